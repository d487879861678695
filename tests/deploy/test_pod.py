# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The DaemonSet's privileges are enough, and each capability is needed: the real agent
runs here as the rendered container would run on a node (tests/deploy/pod.sh: its own
network, cgroup and mount namespaces, the hostPath volumes, a read-only root, exactly the
manifest's capabilities and no_new_privs, the node's PID namespace), with the args the
kubelet would give it from the manifest and the ConfigMap.

Needs root, like the end-to-end tests, and build/ephport (make). Only one agent can run
on a machine at a time.
"""
import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

from manifests import CAPS, HERE, ROOT, expanded_args, objects

EPHPORT = ROOT / "build" / "ephport"
PEER = ROOT / "tests" / "e2e" / "peer.py"
POD_SH = HERE / "pod.sh"
NODE = "emulated-node"

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: it loads BPF and makes namespaces")


def sh(*args, check=True, **kw):
    return subprocess.run([str(a) for a in args], check=check, capture_output=True,
                          text=True, **kw)


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            if right.split()[0] == "cgroup2" and left.split()[3] == "/":
                return left.split()[4]
    pytest.fail("no cgroup2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup)")


def wait_for(check, timeout, what):
    """poll check() until it returns something true; only a generous bound, so a slow
    machine does not decide the result"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    pytest.fail(f"no {what} within {timeout} s")


class Env:
    """The pod's network namespace and cgroup, an app's network namespace (tiny port
    range) and cgroup, and an unnamed namespace only /proc shows. Removed at teardown."""

    def __init__(self, tmp_path):
        if not EPHPORT.exists():
            pytest.fail(f"{EPHPORT} is missing: run make")
        tag = f"{os.getpid()}"
        self.mount = cgroup2_mount()
        self.work = tmp_path
        self.pod_ns, self.app_ns = f"ephport-pod-{tag}", f"ephport-app-{tag}"
        self.pod_cg = os.path.join(self.mount, f"ephport-pod-{tag}")
        self.app_cg_rel = f"/ephport-app-{tag}"
        self.app_cg = self.mount + self.app_cg_rel
        self.namespaces, self.cgroups, self.procs = [], [], []
        for ns in (self.pod_ns, self.app_ns):
            sh("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.app_ns, "sysctl", "-q", "-w",
           "net.ipv4.ip_local_port_range=40000 40001")
        for cg in (self.pod_cg, self.app_cg):
            os.mkdir(cg)
            self.cgroups.append(cg)
        # a namespace with a process and no name: only /proc/PID/ns/net leads to it
        self.hidden = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        self.procs.append(self.hidden)
        self.hidden_ns = wait_for(lambda: self._ns_of(self.hidden.pid), 5, "hidden netns")
        self.app_ns_inode = os.stat(f"/run/netns/{self.app_ns}").st_ino
        self.host_ns_inode = os.stat("/proc/self/ns/net").st_ino

    def _ns_of(self, pid):
        ino = os.stat(f"/proc/{pid}/ns/net").st_ino
        return ino if ino != os.stat("/proc/self/ns/net").st_ino else None

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)
        for cg in reversed(self.cgroups):
            try:
                with open(os.path.join(cg, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        with open(os.path.join(self.mount, "cgroup.procs"), "w") as top:
                            top.write(pid)
            except OSError:
                pass
            os.rmdir(cg)

    def app(self):
        """a TCP client and server (tests/e2e/peer.py) in the app's namespace and cgroup"""
        p = subprocess.Popen(
            ["sh", "-c", 'echo $$ > "$1/cgroup.procs" && exec ip netns exec "$2" '
             '/usr/bin/python3 "$3"', "sh", self.app_cg, self.app_ns, str(PEER)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(p)

        def cmd(line):
            p.stdin.write(line + "\n")
            p.stdin.flush()
            answer = p.stdout.readline().strip()
            assert answer.startswith("ok"), f"{line}: {answer}"
            return answer.split()[1:]
        return cmd

    def http(self, path):
        """GET http://127.0.0.1:9979PATH from inside the pod's network namespace"""
        res = sh("ip", "netns", "exec", self.pod_ns, "/usr/bin/python3", "-c",
                 "import sys, urllib.request, urllib.error\n"
                 "try:\n"
                 "    r = urllib.request.urlopen(sys.argv[1], timeout=2)\n"
                 "    print(r.status); print(r.read().decode())\n"
                 "except urllib.error.HTTPError as e:\n"
                 "    print(e.code)\n"
                 "except OSError:\n"
                 "    print(0)\n", f"http://127.0.0.1:9979{path}")
        status, _, body = res.stdout.partition("\n")
        return int(status), body


class PodAgent:
    """the agent started through pod.sh; its stdout lines parsed"""

    def __init__(self, env, args, caps):
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{env.pod_ns}", str(POD_SH), env.pod_ns,
             env.pod_cg, env.mount, str(env.work), ",".join(caps), str(EPHPORT), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        env.procs.append(self.proc)
        self.events = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if ev is None:
                pytest.fail(f"the agent exited ({self.proc.wait()}) before {what}: "
                            f"{self.proc.stderr.read()}")
            self.seen.append(ev)
            if pred(ev):
                return ev
        pytest.fail(f"no {what} within {timeout} s")

    def snapshots(self, n):
        """the events up to the n-th stats line (the end of a snapshot)"""
        for _ in range(n):
            self.wait(lambda e: e["event"] == "stats", 30, "snapshot")
        return self.seen

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.close()


def pod_args(variant):
    # a 1-second interval, as a user would set EPHPORT_INTERVAL, so snapshots come soon
    return expanded_args(objects(variant), node=NODE, settings={"EPHPORT_INTERVAL": "1"})


def netns_paths(events):
    return {e["netns"]: e["path"] for e in events if e["event"] == "netns"}


def test_base_pod_works(env):
    args = pod_args("base")
    agent = PodAgent(env, args, CAPS)
    try:
        start = agent.wait(lambda e: e["event"] == "agent_start", 30, "agent_start")
        assert start["host"] == NODE
        assert start["settings"]["guard"] is None
        assert start["settings"]["metrics"]["addr"] == ":9979"

        # the probes answer on the pod's address
        wait_for(lambda: env.http("/readyz")[0] == 200, 30, "/readyz 200")
        assert env.http("/healthz")[0] == 200
        status, body = env.http("/metrics")
        assert status == 200 and "\nephport_ready 1\n" in "\n" + body

        # every namespace, entered: the node's, the app's (/run/netns) and the one only
        # /proc shows (hostPID, CAP_SYS_PTRACE, CAP_SYS_ADMIN)
        paths = netns_paths(agent.snapshots(2))
        assert paths.get(env.hidden_ns) == f"/proc/{env.hidden.pid}/ns/net"
        assert paths.get(env.app_ns_inode) == f"/run/netns/{env.app_ns}"
        assert paths.get(env.host_ns_inode), paths

        # a failure in another cgroup is named by its path in the node's tree
        app = env.app()
        app("listen 127.0.0.1 7000")
        ok, failed, _ = app("connect 127.0.0.1 7000 4")
        assert (ok, failed) == ("2", "2")
        ev = agent.wait(lambda e: e["event"] == "connect_failed", 30, "connect_failed")
        assert ev["netns"] == env.app_ns_inode and ev["dport"] == 7000
        assert ev["cgroup"] == env.app_cg_rel
        assert ev["host"] == NODE

        # the pins are the node's: 'ephport query' on the node reads them
        res = subprocess.run([str(EPHPORT), "query", "--json", "--netns",
                              str(env.app_ns_inode)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        tuples = json.loads(res.stdout)["tuples"]
        assert [(t["daddr"], t["dport"], t["in_use"]) for t in tuples] == [
            ("127.0.0.1", 7000, 2)]
    finally:
        rc = agent.stop()
    assert rc == 0, agent.proc.stderr.read()


def test_guard_pod_works(env):
    """the guard overlay's args, on the app's cgroup only (the overlay guards the whole
    node): same capabilities, and a connect to the full tuple is refused"""
    args = pod_args("guard") + ["--cgroup-root", f"/sys/fs/cgroup{env.app_cg_rel}"]
    agent = PodAgent(env, args, CAPS)
    try:
        start = agent.wait(lambda e: e["event"] == "agent_start", 30, "agent_start")
        guard = start["settings"]["guard"]
        assert guard["mode"] == "enforce" and guard["deny_at"] == 0.98
        assert guard["cgroup_root"] == f"/sys/fs/cgroup{env.app_cg_rel}"
        app = env.app()
        app("listen 127.0.0.1 7000")
        assert app("connect 127.0.0.1 7000 2")[:2] == ["2", "0"]
        # the agent puts a destination near the line on the guard's list twice a
        # second: two snapshots that show the full tuple come after that
        for _ in range(2):
            agent.wait(lambda e: e["event"] == "tuple" and e["netns"] == env.app_ns_inode
                       and e["usage"] == 2, 30, "the full tuple in a snapshot")
        assert app("connect 127.0.0.1 7000 1")[:2] == ["0", "1"]
        ev = agent.wait(lambda e: e["event"] == "connect_denied", 30, "connect_denied")
        assert ev["cgroup"] == env.app_cg_rel and ev["mode"] == "enforce"
    finally:
        rc = agent.stop()
    assert rc == 0, agent.proc.stderr.read()


@pytest.mark.parametrize("drop", ["SYSLOG", "SYS_PTRACE", "SYS_ADMIN"])
def test_each_capability_is_needed(env, drop):
    """without one of them the agent stops, or misses namespaces. (Without CAP_BPF or
    CAP_PERFMON it still runs: the kernel takes CAP_SYS_ADMIN for both.)"""
    caps = [c for c in CAPS if c != drop]
    agent = PodAgent(env, pod_args("base"), caps)
    try:
        if drop == "SYSLOG":
            rc = agent.proc.wait(timeout=30)
            assert rc == 1
            assert "CAP_SYSLOG" in agent.proc.stderr.read()
            return
        agent.wait(lambda e: e["event"] == "agent_start", 30, "agent_start")
        paths = netns_paths(agent.snapshots(2))
        # the namespace only /proc leads to: not opened without CAP_SYS_PTRACE, not
        # entered without CAP_SYS_ADMIN; it has no socket, so it is not listed at all
        assert env.hidden_ns not in paths
        if drop == "SYS_ADMIN":
            # a named one is found but cannot be entered: no path, no port range
            assert paths.get(env.app_ns_inode, "absent") in (None, "absent")
    finally:
        agent.stop()


def test_without_sys_admin_counts_new_connections(env):
    """the smaller set docs/kubernetes.md offers (CAP_BPF, CAP_PERFMON, CAP_SYSLOG):
    connections are counted, but other namespaces are not entered (no path, and no
    sysctls read there)"""
    agent = PodAgent(env, pod_args("base"), ["BPF", "PERFMON", "SYSLOG"])
    try:
        agent.wait(lambda e: e["event"] == "agent_start", 30, "agent_start")
        app = env.app()
        app("listen 127.0.0.1 7000")
        assert app("connect 127.0.0.1 7000 2")[:2] == ["2", "0"]
        ev = agent.wait(lambda e: e["event"] == "tuple" and e["netns"] == env.app_ns_inode,
                        30, "the app's tuple")
        assert (ev["daddr"], ev["dport"], ev["in_use"]) == ("127.0.0.1", 7000, 2)
        # the range as the connects saw it, not as read inside the namespace
        ns = agent.wait(lambda e: e["event"] == "netns" and e["netns"] == env.app_ns_inode,
                        30, "the app's netns line")
        assert ns["path"] is None and ns["reserved_ports"] is None
        assert ns["port_range"] == [40000, 40001]
    finally:
        rc = agent.stop()
    assert rc == 0, agent.proc.stderr.read()
