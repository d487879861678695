# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""deploy/completion/ephport.bash, run by bash with bash-completion loaded as a shell does,
and compared with what 'ephport COMMAND --help' says the options are and with what
'ephport completion bash' writes from the option tables."""
import os
import re
import shlex
import subprocess

import pytest

from conftest import EPHPORT, ROOT

# kernel-independent: the host runs it, make vmtest does not
pytestmark = pytest.mark.host_only

COMPLETION = os.path.join(ROOT, "deploy", "completion", "ephport.bash")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
# "  -i, --interval SEC  ..." or "      --guard  ...": an option, a short form, its value
OPTION_LINE = re.compile(r"^\s+(?:(-\w), )?(--[a-z][a-z-]*)(?: ([A-Z][A-Z:\[\]]*))?(?:\s|$)")
COMMANDS = {"agent": ["agent"], "query": ["query"], "top": ["top"], "guard": ["guard", "status"]}


def help_options(command):
    """{long: (short or None, value placeholder or None)} from 'ephport COMMAND --help'."""
    out = subprocess.run([EPHPORT, command, "--help"], capture_output=True, text=True,
                         check=True).stdout
    opts = {}
    for line in out.splitlines():
        m = OPTION_LINE.match(line)
        if m:
            opts[m.group(2)] = (m.group(1), m.group(3))
    assert "--help" in opts, f"no options parsed from 'ephport {command} --help'"
    return opts


def complete(words, cwd=ROOT):
    """COMPREPLY for the command line 'words' (the last one is being completed), sorted."""
    if not os.path.exists(BASH_COMPLETION):
        pytest.fail(f"{BASH_COMPLETION} is missing: apt-get install bash-completion")
    # as typed: bash splits "--opt=value" into "--opt" "=" "value" at COMP_WORDBREAKS
    line = " ".join(words).replace(" = ", "=")
    script = "\n".join([
        f"source {shlex.quote(BASH_COMPLETION)}",
        f"source {shlex.quote(COMPLETION)}",
        "COMP_WORDS=(" + " ".join(shlex.quote(w) for w in words) + ")",
        f"COMP_CWORD={len(words) - 1}",
        f"COMP_LINE={shlex.quote(line)}",
        "COMP_POINT=${#COMP_LINE}",
        # as bash calls it: the command, the word being completed, the word before
        f"_ephport ephport {shlex.quote(words[-1])} {shlex.quote(words[-2])}",
        "printf '%s\\n' \"${COMPREPLY[@]}\"",
    ])
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], cwd=cwd,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # compopt complains outside a real completion; anything else on stderr is a bug
    errors = [e for e in r.stderr.splitlines() if "compopt" not in e]
    assert not errors, r.stderr
    return sorted(w for w in r.stdout.split("\n") if w)


def test_script_is_the_one_the_tables_write():
    """The script is generated from the option tables: 'make completion' after a change."""
    out = subprocess.run([EPHPORT, "completion", "bash"], capture_output=True, text=True,
                         check=True).stdout
    with open(COMPLETION) as f:
        assert f.read() == out, "deploy/completion/ephport.bash is stale: run 'make completion'"


def test_commands():
    assert complete(["ephport", ""]) == ["--help", "--version", "agent", "guard", "query", "top"]
    assert complete(["ephport", "q"]) == ["query"]
    assert complete(["ephport", "--v"]) == ["--version"]
    assert complete(["ephport", "guard", ""]) == ["--help", "status"]


@pytest.mark.parametrize("command", COMMANDS)
def test_offers_exactly_the_long_options_of_help(command):
    offered = complete(["ephport", *COMMANDS[command], "--"])
    assert offered == sorted(help_options(command))


@pytest.mark.parametrize("command", COMMANDS)
def test_an_option_value_is_never_completed_with_options(command):
    """Every option that takes a value (long and short form) is known to the script:
    what follows it is a value, not another option."""
    for long, (short, value) in help_options(command).items():
        if not value:
            continue
        for form in filter(None, (long, short)):
            offered = complete(["ephport", *COMMANDS[command], form, ""])
            assert not [w for w in offered if w.startswith("-")], (form, offered)


def test_deny_errno_values():
    assert complete(["ephport", "agent", "--guard", "--deny-errno", ""]) == [
        "eaddrnotavail", "eperm"]
    assert complete(["ephport", "agent", "--deny-errno", "ep"]) == ["eperm"]
    # --deny-errno=VALUE: bash splits the word at '='
    assert complete(["ephport", "agent", "--deny-errno", "=", "ea"]) == ["eaddrnotavail"]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "events.jsonl").write_text("")
    (tmp_path / "events.old").write_text("")
    (tmp_path / "kubepods.slice").mkdir()
    (tmp_path / "system.slice").mkdir()
    return tmp_path


def test_output_completes_files(files):
    assert complete(["ephport", "agent", "--output", "ev"], cwd=files) == [
        "events.jsonl", "events.old"]
    assert complete(["ephport", "agent", "-o", "events.j"], cwd=files) == ["events.jsonl"]
    # directories too, to reach a file inside one
    assert "system.slice" in complete(["ephport", "agent", "--output", ""], cwd=files)


@pytest.mark.parametrize("option", ["--cgroup-root", "--exempt"])
def test_cgroup_options_complete_directories_only(files, option):
    assert complete(["ephport", "agent", "--guard", option, ""], cwd=files) == [
        "kubepods.slice", "system.slice"]
    assert complete(["ephport", "agent", option, "ev"], cwd=files) == []


def test_guard_status_and_query_options():
    assert complete(["ephport", "guard", "status", "--j"]) == ["--json"]
    assert complete(["ephport", "query", "--json", "--d"]) == ["--dst"]
    assert complete(["ephport", "query", "--dst", ""]) == []
