# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""deploy/man/ephport.8: formats without a warning, and documents exactly the options that
'ephport COMMAND --help' prints, with the same short forms."""
import os
import re
import subprocess

import pytest

from conftest import ROOT
from test_completion import help_options

# kernel-independent: the host runs it, make vmtest does not
pytestmark = pytest.mark.host_only

MANPAGE = os.path.join(ROOT, "deploy", "man", "ephport.8")
SECTIONS = {"agent": "agent options", "query": "query options", "top": "top options",
            "guard": "guard status options"}


def test_groff_has_no_warnings():
    r = subprocess.run(["groff", "-man", "-ww", "-z", MANPAGE], capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (0, "")


def test_man_has_no_warnings():
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    r = subprocess.run(["man", "--warnings", "-l", MANPAGE], capture_output=True, text=True,
                       env=env)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.startswith("EPHPORT(8)")


@pytest.fixture(scope="module")
def rendered():
    """The page as plain text, wide enough that no option line wraps."""
    env = dict(os.environ, MANWIDTH="200", LC_ALL="C.UTF-8")
    r = subprocess.run(["man", "-l", MANPAGE], capture_output=True, text=True, env=env,
                       check=True)
    return r.stdout


def section(text, title):
    """The lines under a heading ("FILES", or "   agent options") up to the next heading
    at its level or above."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.strip() == title and not line.startswith(" " * 7))
    indent = len(lines[start]) - len(lines[start].lstrip())
    out = []
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        out.append(line)
    return out


def documented_options(lines):
    """{long: short or None} of the tagged paragraphs: '-i, --interval sec', '--guard'."""
    opts = {}
    for line in lines:
        m = re.match(r"^ {7}(?:(-\w), )?(--[a-z][a-z-]*)\b", line)
        if m:
            opts[m.group(2)] = m.group(1)
    return opts


@pytest.mark.parametrize("command", SECTIONS)
def test_options_match_help(rendered, command):
    from_help = {long: short for long, (short, _) in help_options(command).items()}
    assert documented_options(section(rendered, SECTIONS[command])) == from_help


def test_sections(rendered):
    headings = [l for l in rendered.splitlines() if re.match(r"^[A-Z][A-Z ]+$", l)]
    assert headings == ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "EXIT STATUS",
                        "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"]
    # the paths the agent really uses
    files = "\n".join(section(rendered, "FILES"))
    for path in ("/sys/fs/bpf/ephport", "/run/ephport/agent.lock", "/etc/default/ephport"):
        assert path in files
