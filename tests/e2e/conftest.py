# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Shared fixtures: private network namespaces, a peer inside them, the real agent,
and ground truth from ss. Everything made here is removed at teardown, on failure too."""
import collections
import ipaddress
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from census import Census  # noqa: E402  (tests/census.py, shared with the soak)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EPHPORT = os.environ.get("EPHPORT", os.path.join(ROOT, "build", "ephport"))
PEER = os.path.join(os.path.dirname(__file__), "peer.py")
PYTHON = "/usr/bin/python3"
PIN_DIR = "/sys/fs/bpf/ephport"
LOCK = "/run/ephport/agent.lock"

# ss state names -> ephport field names
SS_STATES = {
    "SYN-SENT": "syn_sent",
    "SYN-RECV": "syn_recv",
    "ESTAB": "established",
    "FIN-WAIT-1": "fin_wait1",
    "FIN-WAIT-2": "fin_wait2",
    "CLOSE-WAIT": "close_wait",
    "LAST-ACK": "last_ack",
    "CLOSING": "closing",
    "TIME-WAIT": "time_wait",
}
LIVE_STATES = ["syn_sent", "syn_recv", "established", "fin_wait1", "fin_wait2", "close_wait",
               "last_ack", "closing"]
ALL_STATES = LIVE_STATES + ["time_wait"]


def run(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def pytest_configure(config):
    # make vmtest runs the suite on other kernels with -m "not host_only"
    config.addinivalue_line(
        "markers", "host_only: does not depend on the kernel (packaging, man page, "
        "completion): runs on the host, not in make vmtest's VMs")
    config.addinivalue_line(
        "markers", "any_kernel: what it checks is the same on every kernel beyond what the "
        "host and one other show: make vmtest runs it on one kernel only")
    if os.geteuid() != 0:
        pytest.exit("end-to-end tests need root: they load BPF and make namespaces", 1)
    if not os.access(EPHPORT, os.X_OK):
        pytest.exit(f"{EPHPORT} is not built: run make first", 1)


class Netns:
    """A network namespace with lo up and its own ephemeral port range."""

    def __init__(self, name, port_range):
        self.name = name
        run("ip", "netns", "add", name)
        self.exec("ip", "link", "set", "lo", "up")
        self.exec("sysctl", "-q", "-w",
                  f"net.ipv4.ip_local_port_range={port_range[0]} {port_range[1]}")
        self.port_range = port_range
        self.inode = os.stat(f"/run/netns/{name}").st_ino

    def exec(self, *args, check=True):
        return run("ip", "netns", "exec", self.name, *args, check=check)

    def delete(self):
        run("ip", "netns", "del", self.name, check=False)

    def sysctl(self, name, value):
        self.exec("sysctl", "-q", "-w", f"{name}={value}")

    def ss_sockets(self):
        """(state, (laddr, lport), (paddr, pport)) of every TCP socket, as ss lists it (a
        TIME_WAIT minisocket whose peer has not sent its FIN yet is FIN-WAIT-2)."""
        out = self.exec("ss", "-Htano").stdout
        for line in out.splitlines():
            f = line.split()
            # a listener, or one caught closing (its peer is "*"): not a connection
            if f[0] == "LISTEN" or f[4].endswith(":*"):
                continue
            yield f[0], split_hostport(f[3]), split_hostport(f[4])

    def ss_tuples(self, server_ports):
        """Client sockets per (saddr, daddr, dport) and state, as ss sees them."""
        counts = collections.defaultdict(collections.Counter)
        for state, (saddr, _sport), (daddr, dport) in self.ss_sockets():
            if state not in SS_STATES or dport not in server_ports:
                continue  # the server's side of a connection
            counts[(saddr, daddr, dport)][SS_STATES[state]] += 1
        return counts

    def ss_server_time_wait(self, server_ports):
        """TIME_WAIT sockets per local server port: the side that closed first was the server."""
        counts = collections.Counter()
        for state, (_laddr, lport), _peer in self.ss_sockets():
            if state == "TIME-WAIT" and lport in server_ports:
                counts[lport] += 1
        return counts


def norm_addr(a):
    ip = ipaddress.ip_address(a)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip)


def split_hostport(s):
    host, port = s.rsplit(":", 1)
    host = host.strip("[]").split("%")[0]
    return norm_addr(host), int(port)


class Peer:
    """peer.py inside a namespace; cmd() sends one line and returns the answer."""

    def __init__(self, netns):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns.name, PYTHON, PEER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline().strip()
        assert out.startswith("ok"), f"peer: {line!r} -> {out!r}"
        return out.split()[1:]

    def connect(self, addr, port, n, src=None):
        words = self.cmd(f"connect {addr} {port} {n}" + (f" {src}" if src else ""))
        return tuple(int(w) for w in words)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Agent:
    """The real agent; its stdout lines are collected as parsed JSON events."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([EPHPORT, "agent", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.events = queue.Queue()
        self.lines = []
        self.file_lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.output = args[args.index("--output") + 1] if "--output" in args else None
        try:
            if self.output:
                self.start_event = eventually(self._start_in_output, timeout=15)
            else:
                self.start_event = self.wait_event("agent_start", timeout=15)
        except BaseException:
            self.stop(signal.SIGKILL)  # never leave an agent behind for the next test
            raise

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            self.events.put(json.loads(line))
        self.events.put(None)

    def wait_event(self, name, timeout=10, pred=lambda e: True):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if ev is None:
                raise AssertionError(f"agent exited: {self.proc.wait()} {self.proc.stderr.read()}")
            if ev["event"] == name and pred(ev):
                return ev
        raise AssertionError(f"no {name} event within {timeout}s")

    def _start_in_output(self):
        assert self.proc.poll() is None, f"agent exited: {self.proc.stderr.read()}"
        assert os.path.exists(self.output), "no output file yet"
        with open(self.output) as f:
            first = f.readline()
        assert first, "no agent_start in the output file yet"
        return json.loads(first)

    def parsed(self):
        """Every line written so far, parsed."""
        return [json.loads(line) for line in list(self.lines)]

    def parse_file(self, path):
        """The lines of an --output file, parsed (and checked against the schema later)."""
        with open(path) as f:
            lines = f.readlines()
        self.file_lines.extend(lines)
        return [json.loads(line) for line in lines]

    def stop(self, sig=signal.SIGINT):
        """Stop the agent and wait until every line it wrote is in self.lines."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.reader.join(timeout=10)
        return rc


def query(*args):
    """ephport query --json, parsed."""
    r = run(EPHPORT, "query", "--json", *args)
    return json.loads(r.stdout)


def query_tuples(netns):
    """{(saddr, daddr, dport): tuple} for one namespace."""
    return {(t["saddr"], t["daddr"], t["dport"]): t
            for t in query("--netns", str(netns.inode))["tuples"]}


def assert_tuples_are_ss(netns, servers, time_wait_short=0):
    """Every tuple of netns, state by state, as ss lists its sockets to servers; the
    tuples, by key. time_wait_short: how many TIME_WAIT sockets in all ephport may lack."""
    truth = netns.ss_tuples(servers)
    got = query_tuples(netns)
    want = {k for k, c in truth.items() if sum(c.values())}
    assert set(got) == want, ("ephport only: " + str({k: {s: n for s, n in got[k].items() if n}
                                                     for k in set(got) - want}),
                              "ss only: " + str({k: truth[k] for k in want - set(got)}))
    short = 0
    for key, t in got.items():
        for state in ALL_STATES:
            if state == "time_wait" and t[state] < truth[key][state]:
                short += truth[key][state] - t[state]
                continue
            assert t[state] == truth[key][state], \
                f"{key} {state}: ephport {t[state]}, ss {truth[key][state]}"
    assert short <= time_wait_short, f"{short} TIME_WAIT sockets missing"
    return got


def query_netns(netns):
    """The "netns" section of one namespace."""
    found = [n for n in query("--netns", str(netns.inode))["netns"] if n["netns"] == netns.inode]
    assert len(found) == 1, f"netns {netns.inode} in query: {found}"
    return found[0]


CENSUS_NOISE = 8


def exact_unless_undelivered(census, check):
    """check(), unless the kernel kept events from the programs: then a skip. One state
    change no program ran for puts two counts of its tuple off by one, so any such loss
    beyond what the readings' timing explains is the kernel's; a few timer events at the
    edges of the census's span are its own noise."""
    try:
        return check()
    except AssertionError as e:
        lost = census.lost_by_event()
        states = lost["sock/inet_sock_set_state"]
        if states or census.lost() > CENSUS_NOISE:
            pytest.skip(f"the kernel ran no BPF program for {census.lost()} of "
                        f"{census.events():,} events ephport counts from ({states} state "
                        "changes; its trace events counted them): no count can be exact on "
                        "this kernel (docs/kernels.md)")
        e.args = (f"{e.args[0] if e.args else ''} (census of {census.events():,} events, "
                  f"not delivered beyond what timing explains: {lost})",)
        raise


def eventually(check, timeout=5.0):
    """Retry check() until it returns without AssertionError, and not False (a comparison
    in a lambda): the kernel moves sockets between states asynchronously, and ss and the
    maps are read at different instants."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = check()
            if got is not False:
                return got
            failed = AssertionError(f"still False after {timeout} s")
        except AssertionError as e:
            failed = e
        if time.monotonic() > deadline:
            raise failed
        time.sleep(0.05)


@pytest.fixture
def make_netns():
    made = []

    def make(port_range=(40000, 40099)):
        ns = Netns(f"ephport-test-{os.getpid()}-{len(made)}", port_range)
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.delete()


@pytest.fixture
def make_peer():
    peers = []

    def make(netns):
        p = Peer(netns)
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.stop()


def cgroup2_mount():
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified), or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            if right.split()[0] == "cgroup2":
                return left.split()[4]
    return None


def remove_cgroups(mount, dirs):
    """Remove cgroups made by a test, deepest first, moving what is left inside to the root."""
    for d in dirs:
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                for pid in f.read().split():
                    with open(os.path.join(mount, "cgroup.procs"), "w") as top:
                        top.write(pid)
        except OSError:
            pass
        os.rmdir(d)


SCHEMA = os.path.join(ROOT, "docs", "events.schema.json")


def check_lines(lines):
    """Every line an agent wrote must be valid against docs/events.schema.json."""
    import jsonschema
    with open(SCHEMA) as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    dump = os.environ.get("EPHPORT_DUMP_LINES")
    if dump:
        with open(dump, "a") as f:
            f.writelines(lines)
    # Every line is parsed; of an event with more than EPHPORT_SCHEMA_LINES lines (5,000;
    # make vmtest's guests 2,000) that many are checked, spread evenly from the first to the
    # last: the 71,000 tuple lines of the test that fills the guard's map took 44 s to check
    # here, and 10 minutes under TCG.
    most = max(2, int(os.environ.get("EPHPORT_SCHEMA_LINES", "5000")))
    by_event = {}
    for line in lines:
        ev = json.loads(line)
        by_event.setdefault(ev.get("event"), []).append((line, ev))
    for same in by_event.values():
        if most and len(same) > most:
            same = [same[i * (len(same) - 1) // (most - 1)] for i in range(most)]
        for line, ev in same:
            errors = sorted(validator.iter_errors(ev), key=lambda e: e.path)
            assert not errors, f"{line.strip()}\n" + "\n".join(
                f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


@pytest.fixture
def make_agent():
    agents = []

    def make(*args):
        a = Agent(*args)
        agents.append(a)
        return a

    yield make
    for a in agents:
        a.stop()
    for a in agents:
        check_lines(a.lines + a.file_lines)


@pytest.fixture
def agent(make_agent):
    return make_agent("--interval", "1")
