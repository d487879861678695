# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""make deb: the Debian package builds with debhelper from the committed sources, lintian
finds no error and no warning, and dpkg installs it into a root of its own (an overlay of
this machine's, in a private mount namespace: the host's dpkg database and /etc are never
written): ephport runs, the service is enabled and not started, the settings file is a
conffile; a purge leaves nothing behind."""
import glob
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, run
from test_install import makefile_version

# packaging: the same on every kernel; the host runs it, make vmtest does not
pytestmark = pytest.mark.host_only

# what dpkg, its triggers and apt's tools write for any package: not the package's
KEPT = ("var/lib/dpkg/", "var/log/", "var/cache/man/", "var/cache/debconf/")

# in the package's root: install, look, purge, look; each step's output marked
SCRIPT = r"""
set -e
m=$1/root
mount -t tmpfs tmpfs "$1"
mkdir -p "$1/upper" "$1/work" "$m"
mount -t overlay overlay -o "lowerdir=/,upperdir=$1/upper,workdir=$1/work" "$m"
mount -t proc proc "$m/proc"
mount --rbind /dev "$m/dev"
cp "$2" "$m/root/ephport.deb"
inroot() { chroot "$m" "$@"; }
inroot dpkg -i /root/ephport.deb >/dev/null
echo "== version"; inroot ephport --version
echo "== enabled"; inroot systemctl is-enabled ephport || true
echo "== conffiles"; inroot dpkg-query -W -f '${Conffiles}\n' ephport
echo "== files"; inroot dpkg-query -L ephport
inroot dpkg --purge ephport >/dev/null
rm "$m/root/ephport.deb"
echo "== left"
cd "$1/upper"
find . ! -type d -printf '%P\n'
"""


def sections(out):
    got, name = {}, None
    for line in out.splitlines():
        if line.startswith("== "):
            name = line[3:]
            got[name] = []
        elif name:
            got[name].append(line)
    return got


@pytest.fixture(scope="module")
def deb():
    if not shutil.which("git") or subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--is-inside-work-tree"],
            capture_output=True).returncode != 0:
        pytest.skip("make deb packs the committed sources: not a git checkout")
    r = subprocess.run(["make", "-C", ROOT, "--no-print-directory", "deb"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    path = os.path.join(ROOT, "build", "deb", f"ephport_{makefile_version()}_amd64.deb")
    assert os.path.exists(path), r.stdout
    return path


def test_lintian_finds_no_error_or_warning(deb):
    changes = glob.glob(os.path.join(os.path.dirname(deb), "*.changes"))
    assert len(changes) == 1
    r = subprocess.run(["lintian", "--fail-on", "error,warning", changes[0]],
                       capture_output=True, text=True)
    said = [line for line in r.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert (r.returncode, said) == (0, [])


def test_what_the_package_holds(deb):
    files = run("dpkg-deb", "--contents", deb).stdout
    for path in ("./usr/sbin/ephport", "./usr/share/man/man8/ephport.8.gz",
                 "./usr/share/bash-completion/completions/ephport",
                 "./lib/systemd/system/ephport.service", "./etc/default/ephport",
                 "./usr/share/doc/ephport/copyright", "./usr/share/doc/ephport/docs/top.md.gz"):
        assert f" {path}\n" in files, path
    depends = run("dpkg-deb", "--field", deb, "Depends").stdout
    # from dh_shlibdeps: the libraries the binary links, with their versions
    for lib in ("libbpf1", "libcjson1", "libmicrohttpd12", "libmnl0", "libnftables1",
                "libncursesw6"):
        assert lib in depends, depends


def test_installs_runs_and_purges_to_nothing(deb, tmp_path):
    work = tmp_path / "root"
    work.mkdir()
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT,
                        "sh", str(work), deb], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    got = sections(r.stdout)
    assert got["version"] == [f"ephport {makefile_version()}"]
    assert got["enabled"] == ["enabled"]
    # enabled, never started: the maintainer scripts start nothing (dh_installsystemd
    # --no-start); the service starts at the next boot or with systemctl start
    postinst = run("dpkg-deb", "--info", deb, "postinst").stdout
    assert "deb-systemd-helper enable" in postinst
    assert "deb-systemd-invoke" not in postinst and "systemctl start" not in postinst
    assert [c.split()[0] for c in got["conffiles"] if c.strip()] == ["/etc/default/ephport"]
    assert "/usr/sbin/ephport" in got["files"]
    left = [f for f in got["left"] if not f.startswith(KEPT)]
    assert left == [], "the purge left files behind"
