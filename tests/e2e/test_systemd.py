# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""deploy/systemd/ephport.service: systemd-analyze accepts it, and a real systemd runs it
with all its sandboxing and the agent still works.

This machine's PID 1 need not be systemd, so the test boots one as PID 1 of its own PID,
mount, cgroup, UTS and IPC namespaces, in a cgroup of its own, with a private /run (so it
writes nothing to the host's) and only the installed unit to start. The agent it starts
shares the host's network, /sys and BPF file system, like the real service. Everything is
torn down at the end, on failure too."""
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import EPHPORT, LOCK, PIN_DIR, PYTHON, cgroup2_mount, eventually, run
from test_install import make
from test_kernel import btf_types, member

# systemd's sandbox is the same on every kernel: make vmtest runs this on one kernel only
pytestmark = pytest.mark.any_kernel

SYSTEMD = "/lib/systemd/systemd"
# linux/capability.h
CAPS = {"CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21, "CAP_SYSLOG": 34,
        "CAP_PERFMON": 38, "CAP_BPF": 39}

# PID 1 of the new namespaces: a fresh /proc and cgroup2 (rooted at the test's cgroup),
# a private /run that still shows the host's network namespaces, /dev/console to a file
INNER = r"""set -eu
top=$1
mount -t proc proc /proc
# a cgroup v2 view of this cgroup namespace, where a pure v2 host has one of its own
umount -l /sys/fs/cgroup 2>/dev/null || true
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p "$top/netns"
mount --rbind /run/netns "$top/netns"
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir /run/netns
mount --move "$top/netns" /run/netns
: > "$top/console"
mount --bind "$top/console" /dev/console
export container=ephport-test SYSTEMD_UNIT_PATH="$top/units:"
exec /lib/systemd/systemd --system --unit=ephport-test.target --show-status=no \
    </dev/null >"$top/console" 2>&1
"""


@pytest.fixture(scope="module")
def installed():
    """make install into a prefix outside /tmp, /home and /root, which the unit hides."""
    prefix = tempfile.mkdtemp(prefix="ephport-systemd-test.", dir="/var/lib")
    try:
        r = make("install", f"PREFIX={prefix}/usr", f"SYSCONFDIR={prefix}/etc")
        assert r.returncode == 0, r.stderr
        yield prefix
    finally:
        shutil.rmtree(prefix)


def unit_path(prefix):
    return f"{prefix}/usr/lib/systemd/system/ephport.service"


def test_systemd_analyze_verify(installed):
    env = dict(os.environ, MANPATH=f"{installed}/usr/share/man")  # checks Documentation=
    r = subprocess.run(["systemd-analyze", "verify", unit_path(installed)], env=env,
                       capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_systemd_analyze_security(installed):
    r = run("systemd-analyze", "security", "--offline=yes", unit_path(installed))
    level = float(re.search(r"Overall exposure level for ephport.service: ([\d.]+)",
                            r.stdout)[1])
    # 3.6 today; the rest is what the agent needs (root, BPF, the host's network and /proc)
    assert level <= 4.0, r.stdout


def bounding_set(unit):
    names = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M)[1].split()
    return sum(1 << CAPS[n] for n in names)


def mounts(pid):
    """{mount point: options} as the process sees them, the topmost mount of each."""
    out = {}
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            fields = line.split()
            out[fields[4]] = set(fields[5].split(","))
    return out


@pytest.fixture
def host_agent_lock():
    """Hold the host's agent lock: the test's agent has a private /run, so this is what
    keeps another agent from starting beside it."""
    made_dir = not os.path.isdir(os.path.dirname(LOCK))
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    made_file = not os.path.exists(LOCK)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EACCES, errno.EAGAIN):
            pytest.fail("another ephport agent is running: stop it before the tests")
        raise
    yield
    if made_file:
        os.unlink(LOCK)
    os.close(fd)
    if made_dir:
        os.rmdir(os.path.dirname(LOCK))


def remove_cgroup_tree(top):
    deadline = time.monotonic() + 10
    while os.path.isdir(top):
        dirs = sorted((d for d, _, _ in os.walk(top)), key=len, reverse=True)
        for d in dirs:
            try:
                os.rmdir(d)
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise AssertionError(f"cannot remove {top}: processes left in it")
        time.sleep(0.1)


@pytest.fixture
def systemd(installed, host_agent_lock, make_netns):
    """Boot the test systemd with the installed unit and an environment file that turns
    the guard on; yields (its host pid, the service's cgroup, the agent's output file)."""
    if not os.access(SYSTEMD, os.X_OK):
        pytest.fail(f"{SYSTEMD} is missing: apt-get install systemd")
    mount = cgroup2_mount()
    if not mount:
        pytest.skip("no cgroup v2 hierarchy mounted: systemd needs one to run services")
    ns = make_netns((40000, 40001))  # before the boot: the private /run shows /run/netns
    with open(f"{installed}/etc/default/ephport", "w") as f:
        f.write('EPHPORT_ARGS="--interval 1 --guard"\n')
    top = tempfile.mkdtemp(prefix="ephport-systemd-test.", dir="/var/lib")
    out = f"{top}/out"
    units = f"{top}/units"
    os.makedirs(f"{units}/ephport.service.d")
    shutil.copy(unit_path(installed), units)
    with open(f"{units}/ephport-test.target", "w") as f:
        f.write("[Unit]\nDefaultDependencies=no\nWants=ephport.service\n")
    # the test only changes what is not sandboxing: no sysinit.target here, output to a file
    with open(f"{units}/ephport.service.d/test.conf", "w") as f:
        f.write(f"[Unit]\nDefaultDependencies=no\n[Service]\nStandardOutput=append:{out}\n"
                f"StandardError=append:{top}/err\n")

    cgroup = os.path.join(mount, f"ephport-systemd-test-{os.getpid()}")
    outer = None
    try:
        os.mkdir(cgroup)
        outer = subprocess.Popen(
            ["sh", "-c", 'echo $$ > "$1/cgroup.procs" && exec unshare --pid --fork '
             '--kill-child --mount --cgroup --uts --ipc sh -c "$2" inner "$3"',
             "outer", cgroup, INNER, top], stdin=subprocess.DEVNULL)
        service = os.path.join(cgroup, "system.slice", "ephport.service")

        def started():
            assert outer.poll() is None, f"systemd exited: {open(f'{top}/console').read()}"
            assert os.path.exists(out), "the service has not started"
            with open(out) as f:
                first = f.readline()
            assert first.startswith("{"), f"no agent_start yet: {open(f'{top}/err').read()}"
            return json.loads(first)

        # systemd boots in seconds, in a TCG guest on a busy host in tens of seconds
        start = eventually(started, timeout=60)
        assert start["event"] == "agent_start"
        sd = int(open(os.path.join(cgroup, "init.scope", "cgroup.procs")).read().split()[0])
        yield {"pid": sd, "service": service, "out": out, "netns": ns, "top": top}

        poweroff(sd)
        # as slow as the boot in a TCG guest on a busy host
        outer.wait(timeout=60)
    finally:
        if outer and outer.poll() is None:
            outer.kill()  # --kill-child: the namespace's processes go with it
            outer.wait()
        if os.path.isdir(cgroup):
            remove_cgroup_tree(cgroup)
        shutil.rmtree(top)


def poweroff(pid):
    """systemd stops the service (SIGTERM to the agent), then exits."""
    try:
        os.kill(pid, signal.SIGRTMIN + 4)
    except ProcessLookupError:
        pass


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_service_runs_sandboxed(systemd, installed):
    with open(unit_path(installed)) as f:
        unit = f.read()
    pids = open(os.path.join(systemd["service"], "cgroup.procs")).read().split()
    assert len(pids) == 1, pids
    agent = int(pids[0])

    # the options of the unit and of /etc/default/ephport
    with open(f"/proc/{agent}/cmdline") as f:
        argv = f.read().split("\0")[:-1]
    assert argv == [f"{installed}/usr/sbin/ephport", "agent", "--metrics-addr",
                    "127.0.0.1:9979", "--interval", "1", "--guard"]

    # exactly the capabilities of the unit, no new privileges, a seccomp filter
    with open(f"/proc/{agent}/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    assert int(status["CapBnd"], 16) == int(status["CapEff"], 16) == bounding_set(unit)
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2")

    # a read-only system but for the pins, read-only tunables, its own /tmp, no /home
    m = mounts(agent)
    assert "ro" in m["/"] and "ro" in m["/sys"] and "ro" in m["/proc/sys"]
    assert "rw" in m["/sys/fs/bpf"]
    assert "/home" in m
    private, host = os.stat(f"/proc/{agent}/root/tmp"), os.stat("/tmp")
    assert (private.st_dev, private.st_ino) != (host.st_dev, host.st_ino)

    # it enters another network namespace (setns under RestrictNamespaces=net) and sees
    # connects fail there for lack of ports
    ns = systemd["netns"]
    client = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, PYTHON, "-c", """
import errno, socket, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 7000)); srv.listen()
held = [socket.create_connection(("127.0.0.1", 7000)) for _ in range(2)]
try:
    socket.create_connection(("127.0.0.1", 7000))
except OSError as e:
    print(errno.errorcode[e.errno], flush=True)
sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline() == "EADDRNOTAVAIL\n"

        def counted():
            events = lines(systemd["out"])
            tuples = [e for e in events if e["event"] == "tuple" and e["netns"] == ns.inode
                      and e["dport"] == 7000]
            assert tuples and tuples[-1]["usage"] == 2 and tuples[-1]["capacity"] == 2
            assert [e for e in events if e["event"] in ("connect_failed", "connect_denied")
                    and e["netns"] == ns.inode]
            # read from inside the namespace: setns() got through RestrictNamespaces=
            # and the system call filter
            netns = [e for e in events if e["event"] == "netns" and e["netns"] == ns.inode]
            assert netns and netns[-1]["path"] == f"/run/netns/{ns.name}"
            assert isinstance(netns[-1]["tcp_max_tw_buckets"], int)
        # a line a second, in a TCG guest on a busy host sometimes ten seconds late
        eventually(counted, timeout=30)
    finally:
        client.stdin.close()
        client.wait()

    # the guard's programs are attached (seen where the agent's /run is)
    r = run("nsenter", "-t", str(systemd["pid"]), "-m", "-p", EPHPORT, "guard", "status",
            "--json")
    names = sorted(a["name"] for a in json.loads(r.stdout)["attached"])
    assert names == ["guard_connect4", "guard_connect6"]

    # metrics on the unit's address
    with urllib.request.urlopen("http://127.0.0.1:9979/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert "\nephport_ready 1\n" in "\n" + resp.read().decode()


def test_service_stops_cleanly(systemd):
    """systemd's stop (SIGTERM) ends the agent with agent_stop and removes its pins."""
    out = systemd["out"]
    poweroff(systemd["pid"])  # as the fixture's teardown does, but looked at here

    def stopped():
        last = lines(out)[-1]
        assert (last["event"], last.get("reason"), last.get("signal")) == (
            "agent_stop", "signal", "SIGTERM")
        assert not os.path.exists(PIN_DIR)
    eventually(stopped, timeout=20)


@pytest.fixture
def hidden_netns():
    """A network namespace that only a process holds (no /run/netns name), as container
    runtimes make them, with a connection in it; yields its inode."""
    holder = subprocess.Popen(
        ["unshare", "--net", "sh", "-c",
         f'ip link set lo up && exec {PYTHON} -c "{HOLD}"'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "ready\n"
        yield os.stat(f"/proc/{holder.pid}/ns/net").st_ino
    finally:
        holder.kill()
        holder.wait()


HOLD = ("import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', 7000)); s.listen(); "
        "c = socket.create_connection(('127.0.0.1', 7000)); print('ready', flush=True); "
        "sys.stdin.read()")


def maps_in_memcg():
    """Linux 5.11 charged BPF maps to the memory cgroup and took struct bpf_map's memory."""
    return member(btf_types(), "bpf_map", "memory") is None


def perf_event_paranoid():
    with open("/proc/sys/kernel/perf_event_paranoid") as f:
        return int(f.read())


def agent_with_caps(caps):
    """Start the agent with exactly caps (as the unit's CapabilityBoundingSet does for a
    root service, with no new privileges) until its first snapshot: (lines, stderr)."""
    bset = ",".join(["-all"] + ["+" + c[len("CAP_"):].lower() for c in caps])
    # and, where Linux (before 5.11) charges BPF maps to it, the unit's LimitMEMLOCK=infinity
    memlock = [] if maps_in_memcg() else ["prlimit", "--memlock=unlimited:unlimited", "--"]
    proc = subprocess.Popen([*memlock, "setpriv", "--no-new-privs", "--inh-caps=-all",
                             f"--bounding-set={bset}", "--", EPHPORT, "agent", "--interval",
                             "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = []
    try:
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "stats":
                break
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    return events, err


@pytest.mark.parametrize("without", [None, "CAP_SYS_PTRACE", "CAP_SYS_ADMIN", "CAP_SYSLOG"])
def test_each_capability_is_needed(installed, hidden_netns, without):
    """With the unit's capabilities the agent finds a namespace that only a process holds
    and reads its port range; without CAP_SYS_PTRACE it cannot open the process's
    namespace, without CAP_SYS_ADMIN it cannot enter it, without CAP_SYSLOG it cannot
    start. (CAP_BPF and CAP_PERFMON are implied by CAP_SYS_ADMIN, which the
    kernel accepts in their place; the unit names them for what the agent does.)"""
    with open(unit_path(installed)) as f:
        caps = [c for c in re.search(r"^CapabilityBoundingSet=(.*)$", f.read(), re.M)[1].split()
                if c != without]
    events, err = agent_with_caps(caps)
    if without == "CAP_SYSLOG":
        assert events == [] and "needs CAP_SYSLOG" in err
        return
    if without == "CAP_SYS_ADMIN" and perf_event_paranoid() > 2:
        # Debian's kernels: at paranoid 3 a tracepoint's perf event needs CAP_SYS_ADMIN
        assert events == [] and "perf_event_paranoid is 3" in err and "CAP_SYS_ADMIN" in err, err
        return
    assert events and events[0]["event"] == "agent_start", err
    seen = [e for e in events if e["event"] == "netns" and e["netns"] == hidden_netns]
    assert bool(seen) == (without is None), (without, seen)
