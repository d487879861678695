# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""make install / make uninstall into a DESTDIR: every file where docs/install.md says,
with the right contents and modes, the installed binary runs, and uninstall takes it all
away but a settings file the admin changed."""
import filecmp
import glob
import os
import re
import stat
import subprocess

import pytest

from conftest import ROOT

# kernel-independent: the host runs it, make vmtest does not
pytestmark = pytest.mark.host_only

BINARY = os.path.join(ROOT, "build", "ephport")


def makefile_version():
    with open(os.path.join(ROOT, "Makefile")) as f:
        return re.search(r"^VERSION := (\S+)$", f.read(), re.M).group(1)


def make(*args):
    # -o: install what 'make' built; never rebuild it in the middle of a test run
    return subprocess.run(["make", "--no-print-directory", "-C", ROOT, "-o", "build/ephport",
                           *args], capture_output=True, text=True)


def files_under(top):
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, _, names in os.walk(top) for f in names)


def expected_files(prefix):
    p = prefix.lstrip("/")
    docs = [f"{p}/share/doc/ephport/{d}"
            for pattern in ("docs/*.md", "docs/*.json") for d in glob.glob(pattern, root_dir=ROOT)]
    return sorted([f"{p}/sbin/ephport", f"{p}/share/man/man8/ephport.8",
                   f"{p}/share/bash-completion/completions/ephport",
                   f"{p}/lib/systemd/system/ephport.service",
                   f"{p}/share/doc/ephport/README.md", "etc/default/ephport", *docs])


@pytest.mark.parametrize("prefix", ["/usr", "/usr/local"])
def test_install_and_uninstall(tmp_path, prefix):
    dest = tmp_path / "root"
    args = [f"DESTDIR={dest}"] + ([f"PREFIX={prefix}"] if prefix != "/usr/local" else [])
    r = make("install", *args)
    assert r.returncode == 0, r.stderr
    assert files_under(dest) == expected_files(prefix)

    p = f"{dest}{prefix}"
    assert filecmp.cmp(f"{p}/sbin/ephport", BINARY, shallow=False)
    assert filecmp.cmp(f"{p}/share/man/man8/ephport.8", f"{ROOT}/deploy/man/ephport.8",
                       shallow=False)
    assert filecmp.cmp(f"{p}/share/bash-completion/completions/ephport",
                       f"{ROOT}/deploy/completion/ephport.bash", shallow=False)
    assert filecmp.cmp(f"{dest}/etc/default/ephport", f"{ROOT}/deploy/systemd/ephport.default",
                       shallow=False)
    for path in files_under(dest):
        mode = stat.S_IMODE(os.stat(dest / path).st_mode)
        assert mode == (0o755 if path.endswith("sbin/ephport") else 0o644), path

    # the unit starts the binary that was installed, with the settings file of this install
    with open(f"{p}/lib/systemd/system/ephport.service") as f:
        unit = f.read()
    assert re.findall(r"^ExecStart=(\S+)", unit, re.M) == [f"{prefix}/sbin/ephport"]
    assert re.findall(r"^EnvironmentFile=(\S+)", unit, re.M) == ["-/etc/default/ephport"]

    r = subprocess.run([f"{p}/sbin/ephport", "--version"], capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (0, f"ephport {makefile_version()}\n")

    r = make("uninstall", *args)
    assert r.returncode == 0, r.stderr
    assert files_under(dest) == []
    assert not os.path.exists(f"{p}/share/doc/ephport")


def test_changed_settings_survive_install_and_uninstall(tmp_path):
    dest = tmp_path / "root"
    assert make("install", f"DESTDIR={dest}").returncode == 0
    settings = dest / "etc/default/ephport"
    settings.write_text('EPHPORT_ARGS="--interval 30"\n')

    assert make("install", f"DESTDIR={dest}").returncode == 0
    assert settings.read_text() == 'EPHPORT_ARGS="--interval 30"\n'

    r = make("uninstall", f"DESTDIR={dest}")
    assert r.returncode == 0, r.stderr
    assert f"kept {settings} (changed)" in r.stdout
    assert files_under(dest) == ["etc/default/ephport"]


def test_other_directories(tmp_path):
    """SBINDIR, SYSCONFDIR and SYSTEMDUNITDIR move files, and the unit follows them."""
    dest = tmp_path / "root"
    r = make("install", f"DESTDIR={dest}", "PREFIX=/opt/ephport", "SBINDIR=/opt/ephport/bin",
             "SYSCONFDIR=/etc/opt/ephport", "SYSTEMDUNITDIR=/etc/systemd/system")
    assert r.returncode == 0, r.stderr
    unit = (dest / "etc/systemd/system/ephport.service").read_text()
    assert "ExecStart=/opt/ephport/bin/ephport agent " in unit
    assert "EnvironmentFile=-/etc/opt/ephport/default/ephport\n" in unit
    assert (dest / "etc/opt/ephport/default/ephport").is_file()
    assert os.access(dest / "opt/ephport/bin/ephport", os.X_OK)


@pytest.mark.parametrize("var", ["PREFIX=usr/local", "SBINDIR=sbin", "SYSCONFDIR=etc", "DOCDIR="])
@pytest.mark.parametrize("target", ["install", "uninstall"])
def test_relative_directory_is_refused(tmp_path, var, target):
    dest = tmp_path / "root"
    r = make(target, f"DESTDIR={dest}", var)
    assert r.returncode != 0
    name, value = var.split("=")
    assert f"make: {name} must be an absolute path, not '{value}'" in r.stderr.splitlines()
    assert not dest.exists()
