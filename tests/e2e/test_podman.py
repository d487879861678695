# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A real container runtime: podman (with crun) runs the image 'make image' builds the way
the DaemonSet runs it (its capabilities and no others, the host's PID namespace, a
read-only root, the same host mounts, the node's name as --host, the guard on a cgroup
subtree), and clients in ordinary podman containers, each in a network namespace of its
own and a libpod-<id> cgroup, run out of ports against a server container over veth pairs
(198.18.0.0/15). The agent in its container counts them as 'ss' in them does, names the
container id 'podman ps --no-trunc' shows in connect_failed and top_processes, and its
guard refuses inside a container.

crun runs containers on a cgroup2-only hierarchy: on a machine with cgroup v1 controllers
(cgroup2 at /sys/fs/cgroup/unified) the test says so and skips; make vmtest's guests mount
cgroup2 alone, and run it there. Everything the test makes goes at the end: containers,
the image and podman's storage (a directory of its own), namespaces, cgroups."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import ROOT, eventually, run

# the runtime and the image are the same whatever the kernel
pytestmark = pytest.mark.any_kernel

PODMAN = shutil.which("podman")
CGROUP = "/sys/fs/cgroup"
CAPS = ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYSLOG"]
PORT = 8080
RANGE = (40000, 40019)  # 20 ports per client namespace

# the server: accepts and holds every connection
SERVER = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(4096)
held = []
print("ready", flush=True)
while True:
    held.append(s.accept()[0])
"""

# a client: n connects, held; then "made M failed F errno E" and sleeps
CLIENT = r"""
import errno, socket, sys, time
conns, failed, why = [], 0, "-"
for _ in range(int(sys.argv[3])):
    try:
        conns.append(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10))
    except OSError as e:
        failed += 1
        why = errno.errorcode.get(e.errno, str(e.errno))
print("made", len(conns), "failed", failed, "errno", why, flush=True)
time.sleep(3600)
"""


def pure_cgroup2():
    return os.path.exists(os.path.join(CGROUP, "cgroup.controllers"))


class Podman:
    """podman with a storage of its own under work; what it made goes in close()."""

    def __init__(self, work):
        self.work = work
        # a tmpfs: the overlays podman makes need an upper directory on a file system
        # that can hold one (not the overlay a make vmtest guest's root is)
        run("mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", work)
        self.base = [PODMAN, "--root", f"{work}/storage", "--runroot", f"{work}/run",
                     "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"]
        self.tag = f"localhost/ephport-podman-test-{os.getpid()}:latest"
        self.netns, self.cgroups = [], []

    def __call__(self, *args, check=True, timeout=120):
        return run(*self.base, *args, check=check, timeout=timeout)

    def build_image(self):
        buildah = (f"buildah --root {self.work}/storage --runroot {self.work}/run "
                   "--storage-driver vfs")
        r = subprocess.run(["make", "-C", ROOT, "--no-print-directory", "image",
                            f"IMAGE={self.tag}", f"BUILDAH={buildah}"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr

    def make_netns(self, name, addr, peer_addr, server):
        """a namespace joined to the server's by a veth pair, 20 ports"""
        run("ip", "netns", "add", name)
        self.netns.append(name)
        ex = ["ip", "netns", "exec"]
        run(*ex, name, "ip", "link", "set", "lo", "up")
        run(*ex, name, "sysctl", "-q", "-w",
            f"net.ipv4.ip_local_port_range={RANGE[0]} {RANGE[1]}")
        if server:
            run(*ex, name, "ip", "link", "add", "c0", "type", "veth", "peer", "name", "s0",
                "netns", server)
            run(*ex, name, "ip", "addr", "add", f"{addr}/24", "dev", "c0")
            run(*ex, name, "ip", "link", "set", "c0", "up")
            run(*ex, server, "ip", "link", "set", "s0", "name", f"s{len(self.netns)}")
            run(*ex, server, "ip", "addr", "add", f"{peer_addr}/24", "dev",
                f"s{len(self.netns)}")
            run(*ex, server, "ip", "link", "set", f"s{len(self.netns)}", "up")
        return os.stat(f"/run/netns/{name}").st_ino

    def container(self, name, netns, cgroup, *cmd):
        """an ordinary container with the machine's files as its root (an overlay on them),
        in netns, its cgroup under cgroup; its full id"""
        # --rootfs: the first argument is the root file system (":O": an overlay on it)
        return self("run", "-d", "--name", name, "--network", f"ns:/run/netns/{netns}",
                    "--cgroup-parent", cgroup, "--rootfs", "/:O", *cmd).stdout.strip()

    def close(self):
        self("rm", "--all", "--force", "--time", "0", check=False)
        self("rmi", "--all", "--force", check=False)
        subprocess.run(["umount", "-R", self.work], capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)
        for n in self.netns:
            run("ip", "netns", "del", n, check=False)
        for c in reversed(self.cgroups):
            for d in sorted((os.path.join(dp, x) for dp, dn, _ in os.walk(c) for x in dn),
                            key=len, reverse=True):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            try:
                os.rmdir(c)
            except OSError:
                pass


@pytest.fixture
def podman():
    if not pure_cgroup2():
        pytest.skip("crun runs containers on a cgroup2-only hierarchy; this machine mounts "
                    "cgroup v1 controllers (make vmtest's guests run this test)")
    if PODMAN is None:
        pytest.fail("podman is not installed (Debian packages podman and crun; "
                    "'make test' installs them)")
    # podman refuses a run root of more than 50 characters: not under pytest's tmp_path
    p = Podman(tempfile.mkdtemp(prefix="eppm-", dir="/tmp"))
    try:
        yield p
    finally:
        p.close()


def logs(podman, name):
    return [json.loads(line) for line in podman("logs", name).stdout.splitlines()
            if line.startswith("{")]


def ss_established(podman, name, daddr):
    out = podman("exec", name, "ss", "-Htn", "state", "established", "dst", daddr).stdout
    return len(out.splitlines())


def test_containers_run_out_and_the_agent_in_its_container_names_them(podman):
    tag = f"{os.getpid()}"
    parent = f"/ephport-podman-{tag}"
    podman.cgroups.append(CGROUP + parent)
    os.makedirs(CGROUP + parent + "/guarded")
    podman.build_image()
    os.makedirs("/run/ephport", mode=0o700, exist_ok=True)  # the DaemonSet's DirectoryOrCreate

    srv = f"eppm-s-{tag}"
    podman.make_netns(srv, None, None, None)
    free_ns = podman.make_netns(f"eppm-a-{tag}", "198.18.70.2", "198.18.70.1", srv)
    guarded_ns = podman.make_netns(f"eppm-b-{tag}", "198.18.71.2", "198.18.71.1", srv)

    # the agent as the DaemonSet runs it (deploy/kubernetes/base/daemonset.yaml)
    node = "node-podman"
    podman("run", "-d", "--name", f"ephport-{tag}", "--pid", "host", "--network", "none",
           "--read-only", "--cap-drop", "ALL", *[f"--cap-add={c}" for c in CAPS],
           "--security-opt", "no-new-privileges",
           "-v", "/sys/fs/bpf:/sys/fs/bpf", "-v", "/sys/kernel/tracing:/sys/kernel/tracing:ro",
           "-v", "/sys/kernel/btf:/sys/kernel/btf:ro", "-v", f"{CGROUP}:{CGROUP}:ro",
           "-v", "/run/netns:/run/netns:ro,rslave", "-v", "/run/ephport:/run/ephport",
           podman.tag, "agent", "--host", node, "--interval", "1", "--metrics-addr", ":9979",
           "--guard", "--cgroup-root", f"{CGROUP}{parent}/guarded", "--deny-at", "0.8")
    agent = f"ephport-{tag}"

    def started():
        got = [e["event"] for e in logs(podman, agent)]
        assert "agent_start" in got, podman("logs", agent).stdout[-2000:]
    eventually(started, timeout=120)
    assert logs(podman, agent)[0]["host"] == node

    podman.container(f"srv-{tag}", srv, parent, "python3", "-c", SERVER, str(PORT))
    # one client runs out; one, under the guard, is refused at 16 of 20
    free = podman.container(f"cli-a-{tag}", f"eppm-a-{tag}", parent, "python3", "-c",
                            CLIENT, "198.18.70.1", str(PORT), "25")
    guarded = podman.container(f"cli-b-{tag}", f"eppm-b-{tag}", parent + "/guarded",
                               "python3", "-c", CLIENT, "198.18.71.1", str(PORT), "25")
    ids = podman("ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}").stdout
    assert f"{free} cli-a-{tag}" in ids and f"{guarded} cli-b-{tag}" in ids

    def said(name):
        out = podman("logs", name).stdout
        assert out.startswith("made"), out
        return out.split()
    assert eventually(lambda: said(f"cli-a-{tag}"), timeout=60) == [
        "made", "20", "failed", "5", "errno", "EADDRNOTAVAIL"]
    assert eventually(lambda: said(f"cli-b-{tag}"), timeout=60) == [
        "made", "16", "failed", "9", "errno", "EADDRNOTAVAIL"]

    # the agent's counts, asked in its container, are what ss says in the clients'
    def counted(ns_inode, name, daddr, n):
        q = json.loads(podman("exec", agent, "ephport", "query", "--json", "--netns",
                              str(ns_inode)).stdout)
        t = [t for t in q["tuples"] if t["daddr"] == daddr]
        assert len(t) == 1, q["tuples"]
        assert t[0]["established"] == ss_established(podman, name, daddr) == n
    eventually(lambda: counted(free_ns, f"cli-a-{tag}", "198.18.70.1", 20), timeout=30)
    eventually(lambda: counted(guarded_ns, f"cli-b-{tag}", "198.18.71.1", 16), timeout=30)

    # the container ids in the lines
    def lines():
        got = logs(podman, agent)
        failed = [e for e in got if e["event"] == "connect_failed" and e["netns"] == free_ns]
        denied = [e for e in got if e["event"] == "connect_denied"
                  and e["netns"] == guarded_ns]
        tops = [p for e in got if e["event"] == "pressure" and e["netns"] == free_ns
                for p in e["top_processes"]]
        assert failed and denied and tops, [e["event"] for e in got]
        return failed, denied, tops
    failed, denied, tops = eventually(lines, timeout=30)
    assert {e["container_id"] for e in failed} == {free}
    assert sum(e["count"] for e in failed) == 5
    assert {e["container_id"] for e in denied} == {guarded}
    assert sum(e["count"] for e in denied) == 9
    assert free in {p["container_id"] for p in tops}
    podman("stop", "--time", "5", agent)
    assert logs(podman, agent)[-1]["event"] == "agent_stop"
