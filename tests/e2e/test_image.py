# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""make image: the container image builds with buildah (no daemon), holds ephport and only
what it needs, runs 'ephport --version', and its agent runs on this kernel.
The image gets a unique tag and is removed at the end, on failure too."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest

from conftest import ROOT, run
from test_install import make, makefile_version
from test_metrics import get

# kernel-independent: the host runs it, make vmtest does not
pytestmark = pytest.mark.host_only

BUILDAH = ["buildah", "--storage-driver", "vfs"]


@pytest.fixture(scope="module")
def image():
    if not shutil.which("buildah"):
        pytest.skip("buildah is not installed (make test-deps installs it)")
    if subprocess.run(["make", "-q", "--no-print-directory", "-C", ROOT,
                       "build/ephport"]).returncode != 0:
        pytest.skip("build/ephport is older than its sources: run make first "
                    "(this test does not rebuild it under other tests)")
    tag = f"localhost/ephport-test-{uuid.uuid4().hex[:12]}:{makefile_version()}"
    try:
        r = make("image", f"IMAGE={tag}")
        assert r.returncode == 0, r.stdout + r.stderr
        yield tag
    finally:
        subprocess.run([*BUILDAH, "rmi", "--force", tag], capture_output=True)


@pytest.fixture
def container(image):
    name = run(*BUILDAH, "from", "--pull-never", image).stdout.strip()
    try:
        yield name
    finally:
        subprocess.run([*BUILDAH, "rm", name], capture_output=True)


def test_config(image):
    config = json.loads(run(*BUILDAH, "inspect", "--type", "image", image).stdout)["OCIv1"][
        "config"]
    assert config["Entrypoint"] == ["/usr/sbin/ephport"]
    assert config["Cmd"] == ["agent"]
    assert config["Labels"]["org.opencontainers.image.version"] == makefile_version()


def test_version_runs_in_the_image(container):
    r = run(*BUILDAH, "run", "--isolation", "chroot", container, "--", "/usr/sbin/ephport",
            "--version")
    assert r.stdout == f"ephport {makefile_version()}\n"


def test_contents_are_the_binary_its_libraries_and_the_loader(container):
    mnt = run(*BUILDAH, "mount", container).stdout.strip()
    try:
        files = sorted(os.path.relpath(os.path.join(d, f), mnt)
                       for d, _, names in os.walk(mnt) for f in names)
        binary = os.path.join(ROOT, "build", "ephport")
        sonames = re.findall(r"^\s*(\S+) => /", run("ldd", binary).stdout, re.M)
        loader = re.search(r"interpreter: (\S+)\]", run("readelf", "-l", binary).stdout)[1]
        libs = [f for f in files if f.startswith("usr/lib") and "/terminfo/" not in f]
        # ephport top's terminals (ncurses reads their terminfo entries)
        assert sorted(f for f in files if "/terminfo/" in f) == [
            "usr/lib/terminfo/" + t for t in ("l/linux", "s/screen", "s/screen-256color",
                                              "t/tmux", "t/tmux-256color", "v/vt100",
                                              "x/xterm", "x/xterm-256color")]
        assert sorted(os.path.basename(f) for f in libs) == sorted(
            sonames + [os.path.basename(loader)])
        assert os.path.exists(mnt + loader)  # where the binary asks for it (/lib64 -> usr/lib64)
        others = [f for f in files if not f.startswith("usr/lib")]
        # (the copyright files include ncurses-base's, for the terminfo entries)
        assert all(f.startswith("usr/share/doc/") and f.endswith("/copyright")
                   for f in others if f != "usr/sbin/ephport"), others
        assert "usr/sbin/ephport" in files
        assert not os.path.lexists(os.path.join(mnt, "bin", "sh"))  # no shell: minimal
    finally:
        subprocess.run([*BUILDAH, "umount", container], capture_output=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_agent_runs_from_the_image(container):
    """The image's own binary and libraries, as a DaemonSet would run them: the host's
    /sys and /proc, a private /run. Starts, serves metrics (libmicrohttpd and GnuTLS from
    the image), stops cleanly on SIGINT."""
    mnt = run(*BUILDAH, "mount", container).stdout.strip()
    port = free_port()
    script = ('set -e; mount --rbind /sys "$1/sys"; mount --rbind /proc "$1/proc"; '
              'mount -t tmpfs tmpfs "$1/run"; exec chroot "$1" /usr/sbin/ephport agent '
              f'--interval 1 --metrics-addr 127.0.0.1:{port}')
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             script, "sh", mnt], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first, proc.stderr.read()
        start = json.loads(first)
        assert (start["event"], start["version"]) == ("agent_start", makefile_version())
        # /metrics answers 503 until the first check is done, as a startup probe sees it
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            if get(base + "/readyz")[0] == 200:
                break
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert f'ephport_build_info{{version="{makefile_version()}"}} 1' in body.splitlines()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        last = json.loads(out.splitlines()[-1])
        assert (proc.returncode, last["event"], last["reason"]) == (0, "agent_stop", "signal")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run([*BUILDAH, "umount", container], capture_output=True)
