# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""What a user sees from the command line: help, errors, exit codes, agent lifecycle."""
import json
import os
import re
import signal
import subprocess

import pytest

from conftest import check_lines, EPHPORT, LOCK, PIN_DIR, Agent, eventually, query, query_tuples, run

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def ephport(*args, pre=()):
    return subprocess.run([*pre, EPHPORT, *args], capture_output=True, text=True)


# every program the agent may load: the syscall entry programs are for kernels without
# bpf_task_pt_regs (docs/kernels.md)
ENTRY_PROGS = {"connect_enter", "bind_enter"}
PROG_NAMES = ENTRY_PROGS | {"tuples_set_state", "tuples_backstop", "tw_timer_start", "fw2_sweep",
                            "tw_timer_cancel", "walk", "connect_exit", "bind_exit"}


def expected_progs(features):
    """The programs an agent loads (without --guard) on a kernel with these features."""
    return PROG_NAMES if not features["bpf_task_pt_regs"] else PROG_NAMES - ENTRY_PROGS


def ephport_progs():
    out = run("bpftool", "-j", "prog", "show").stdout
    return [p for p in json.loads(out) if p.get("name", "") in PROG_NAMES]


def assert_no_progs():
    # the kernel frees a detached program after an RCU grace period, not at once
    def check():
        assert ephport_progs() == []
    eventually(check, timeout=10)


@pytest.mark.any_kernel
def test_version_and_help():
    r = ephport("--version")
    assert r.returncode == 0 and re.fullmatch(r"ephport \d+\.\d+\.\d+\S*\n", r.stdout)
    r = ephport("--help")
    assert r.returncode == 0 and "agent" in r.stdout and "query" in r.stdout
    for cmd in ("agent", "query"):
        r = ephport(cmd, "--help")
        assert r.returncode == 0
        assert r.stdout.startswith(f"usage: ephport {cmd}")
        assert r.stderr == ""


@pytest.mark.parametrize("args", [
    ["bogus"],
    [],
    ["query", "--bogus"],
    ["query", "--dst", "300.1.1.1"],
    ["query", "--dst", "127.0.0.1:0"],
    ["query", "--dst", "127.0.0.1:65536"],
    ["query", "--dst", "[::1"],
    ["query", "--netns", "abc"],
    ["query", "--src"],
    ["query", "extra"],
    ["agent", "--interval", "0"],
    ["agent", "--interval", "1x"],
    ["agent", "--interval", "-5"],
    ["agent", "--max-tuples", "0"],
    ["agent", "--max-tuples", "99999999999"],
    ["agent", "--max-sockets", "100"],  # gone with the socket map (0.2)
    ["agent", "--nope"],
    ["agent", "--tuple-idle", "x"],
    ["query", "-jx"],
])
@pytest.mark.any_kernel
def test_bad_input_is_a_usage_error(args):
    r = ephport(*args)
    assert r.returncode == 2
    assert r.stdout == ""
    assert "usage: ephport" in r.stderr
    assert len(r.stderr.splitlines()) <= 2
    if args == ["query", "-jx"]:
        assert "unknown option '-x'" in r.stderr


@pytest.mark.any_kernel
def test_query_without_agent():
    r = ephport("query")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.splitlines() == ["ephport: no ephport agent is running (start one with 'ephport agent')"]
    r = ephport("query", "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"error": "no ephport agent is running (start one with 'ephport agent')"}


@pytest.mark.any_kernel
def test_agent_needs_root():
    r = ephport("agent", pre=NOBODY)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "ephport: agent needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN): run it with sudo"]
    assert not os.path.exists(PIN_DIR)


def test_agent_without_btf():
    # hide the kernel's BTF in a private mount namespace
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        f"mount -t tmpfs none /sys/kernel/btf && exec {EPHPORT} agent"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1
    assert "kernel has no BTF" in r.stderr and "CONFIG_DEBUG_INFO_BTF" in r.stderr


def test_agent_with_kernel_addresses_hidden():
    # TIME_WAIT sockets are told apart by their timer's handler, found in /proc/kallsyms
    path = "/proc/sys/kernel/kptr_restrict"
    saved = open(path).read().strip()
    try:
        with open(path, "w") as f:
            f.write("2")
        r = subprocess.run([EPHPORT, "agent"], capture_output=True, text=True)
    finally:
        with open(path, "w") as f:
            f.write(saved)
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1 and "kptr_restrict" in r.stderr
    assert not os.path.exists(PIN_DIR) and ephport_progs() == []


@pytest.mark.any_kernel
def test_lifecycle_events_and_clean_exit(make_netns, make_peer):
    a = Agent("--interval", "1", "--host", "node-a")
    try:
        start = a.start_event
        assert TS.match(start["ts"]) and start["host"] == "node-a"
        assert start["version"] == ephport("--version").stdout.split()[1]
        assert start["kernel"]["release"] == os.uname().release
        features = start["kernel"]["features"]
        assert all(isinstance(v, bool) for v in features.values())
        assert start["settings"] == {"interval": 1, "max_tuples": 65536, "tuple_idle": 600,
                                     "warn_at": 0.8, "critical_at": 0.95, "clear_margin": 0.05,
                                     "hold": 30, "output": None, "guard": None,
                                     "metrics": None,
                                     "nat": {"warn_at": 0.8, "critical_at": 0.95,
                                             "range": None}}
        assert start["schema_version"] == 1
        assert sorted(p["name"] for p in ephport_progs()) == sorted(expected_progs(features))

        # a second agent refuses while the first runs
        r = ephport("agent")
        assert r.returncode == 1
        assert r.stderr.splitlines() == [
            f"ephport: another ephport agent is already running (pid {a.proc.pid}); stop it first"]

        ns = make_netns()
        peer = make_peer(ns)
        peer.cmd("listen ::1 7001")
        assert peer.connect("::1", 7001, 3) == (3, 0, 0)
        # a check may fall between the connects (a slow VM): lines follow the counts to 3
        ev = a.wait_event("tuple", pred=lambda e: e["netns"] == ns.inode and
                          (e["established"], e["connects"]) == (3, 3))
        assert TS.match(ev["ts"]) and ev["host"] == "node-a"
        assert (ev["family"], ev["saddr"], ev["daddr"], ev["dport"]) == ("ipv6", "::1", "::1", 7001)
        assert ev["in_use"] == 3
        stats = a.wait_event("stats")
        assert stats["tuples_dropped"] == 0 and stats["lines_dropped"] == 0
        # a query while a snapshot runs sees the same tuple
        assert query_tuples(ns)[("::1", "::1", 7001)]["established"] == 3
    finally:
        rc = a.stop(signal.SIGTERM)
    assert rc == 0
    stop = json.loads(a.lines[-1])
    assert stop["event"] == "agent_stop" and stop["signal"] == "SIGTERM"
    for line in a.lines:  # every line is one JSON object with the common fields
        ev = json.loads(line)
        assert TS.match(ev["ts"]) and ev["host"] == "node-a" and ev["event"]
    check_lines(a.lines)
    assert not os.path.exists(PIN_DIR)
    assert not os.path.exists(os.path.dirname(LOCK))
    assert_no_progs()
    assert ephport("query").returncode == 1


@pytest.mark.any_kernel
def test_kill_9_leaves_nothing_that_blocks_a_restart():
    a = Agent("--interval", "60")
    a.stop(signal.SIGKILL)
    # the pins outlive a killed agent, the lock and the programs do not
    assert os.path.isdir(PIN_DIR)
    assert_no_progs()
    r = ephport("query")
    assert r.returncode == 1 and "no ephport agent is running" in r.stderr
    b = Agent("--interval", "60")
    try:
        assert query()["agent_pid"] == b.proc.pid
    finally:
        assert b.stop(signal.SIGINT) == 0
    assert not os.path.exists(PIN_DIR)


@pytest.mark.any_kernel
def test_query_needs_root(agent):
    r = ephport("query", pre=NOBODY)
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1 and "query needs root" in r.stderr


@pytest.mark.any_kernel
def test_table_output(agent, make_netns, make_peer):
    ns = make_netns()
    peer = make_peer(ns)
    peer.cmd("listen 127.0.0.1 7000")
    peer.cmd("listen ::1 7001")
    assert peer.connect("127.0.0.1", 7000, 2) == (2, 0, 0)
    assert peer.connect("::1", 7001, 5) == (5, 0, 0)

    def check():
        r = ephport("query", "--netns", str(ns.inode))
        assert r.returncode == 0 and r.stderr == ""
        tuples, namespaces, guard = r.stdout.split("\n\n")
        assert guard == "guard: off\n"
        lines = tuples.splitlines()
        assert lines[0].split()[:7] == ["NETNS", "SRC", "DST", "UTIL%", "USAGE", "CAPACITY",
                                        "IN_USE"]
        rows = [l.split() for l in lines[1:]]
        # range 40000-40099: 100 ports; most used first
        assert [(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[8]) for r in rows] == [
            (str(ns.inode), "::1", "[::1]:7001", "5.0", "5", "100", "5", "5"),
            (str(ns.inode), "127.0.0.1", "127.0.0.1:7000", "2.0", "2", "100", "2", "2"),
        ]
        lines = namespaces.splitlines()
        assert lines[0].split()[:4] == ["NETNS", "PORT_RANGE", "RESERVED", "BOUND"]
        assert lines[1].split()[:4] == [str(ns.inode), "40000-40099", "0", "0"]
    eventually(check)


def test_full_maps_are_counted_not_fatal(make_agent, make_netns, make_peer):
    a = make_agent("--interval", "1", "--max-tuples", "2")
    ns = make_netns()
    peer = make_peer(ns)
    for port in (7000, 7001, 7002):
        peer.cmd(f"listen 127.0.0.1 {port}")
    assert peer.connect("127.0.0.1", 7000, 2) == (2, 0, 0)
    assert peer.connect("127.0.0.1", 7001, 2) == (2, 0, 0)
    assert peer.connect("127.0.0.1", 7002, 1) == (1, 0, 0)  # third tuple: no room

    # the maps are host-wide: other traffic on the machine may take room too, so
    # the counts below are lower bounds, and exact only for this namespace's view
    doc = query("--netns", str(ns.inode))
    assert doc["stats"]["max_tuples"] == 2
    assert doc["stats"]["tuples"] <= 2
    assert doc["stats"]["tuples_dropped"] >= 1  # 3 destinations, room for 2
    by_port = {t["dport"]: t for t in doc["tuples"]}
    assert set(by_port) < {7000, 7001, 7002}
    # what did fit is exact: a tuple counts every socket or none
    for port, t in by_port.items():
        assert (t["connects"], t["established"]) == ({7000: 2, 7001: 2}[port],) * 2
    r = ephport("query")
    assert r.returncode == 0
    assert re.search(r"maps were full: [1-9]\d* new tuples and 0 server TIME_WAIT sockets "
                     r"not counted", r.stderr)
    ev = a.wait_event("stats", pred=lambda e: e["tuples_dropped"] >= 1)
    assert ev["tuples"] <= 2


def test_idle_tuples_expire_busy_ones_stay(make_agent, make_netns, make_peer):
    a = make_agent("--interval", "1", "--tuple-idle", "1")
    ns = make_netns()
    peer = make_peer(ns)
    peer.cmd("listen 127.0.0.1 7000")
    peer.cmd("listen 127.0.0.1 7001")
    assert peer.connect("127.0.0.1", 7000, 2) == (2, 0, 0)
    assert peer.connect("127.0.0.1", 7001, 1) == (1, 0, 0)
    peer.cmd("accepted 3")
    eventually(lambda: assert_keys(ns, {7000, 7001}))
    # close every client (RST: no TIME_WAIT, which would keep the tuple busy), then
    # open one to 7001 again: only 7000 goes idle
    peer.cmd("reset-clients")
    assert peer.connect("127.0.0.1", 7001, 1) == (1, 0, 0)
    eventually(lambda: assert_keys(ns, {7001}), timeout=10)
    a.wait_event("stats", pred=lambda e: e["tuples_expired"] >= 1)
    a.wait_event("stats")  # one more snapshot: the busy tuple is still there
    t = query_tuples(ns)
    assert list(t) == [("127.0.0.1", "127.0.0.1", 7001)]
    assert t[("127.0.0.1", "127.0.0.1", 7001)]["established"] == 1
    # a new connect brings an expired destination back, counted from zero
    assert peer.connect("127.0.0.1", 7000, 1) == (1, 0, 0)
    t = query_tuples(ns)[("127.0.0.1", "127.0.0.1", 7000)]
    assert (t["connects"], t["established"]) == (1, 1)


def assert_keys(ns, ports):
    assert {k[2] for k in query_tuples(ns)} == ports


BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled"
# the programs whose cost the stats line reports, without and with --guard
COST_PROGS = {"tuples_set_state", "tuples_backstop", "tw_timer_start", "tw_timer_cancel",
              "connect_exit", "bind_exit"}
GUARD_PROGS = {"guard_connect4", "guard_connect6"}
DATA_MAPS = {"tuples", "ports", "local_tw", "fw2", "bound_socks", "claims", "failures", "openers",
             "denials", "spreads", "cg_ports", "ns_tuples", "guard_dst", "ns_limits", "notices",
             "changes"}


def bpf_stats_value():
    with open(BPF_STATS) as f:
        return f.read().strip()


def stats_after_connects(agent, make_netns, make_peer):
    """The stats line of the first snapshot that saw five connects in a private namespace."""
    ns = make_netns()
    peer = make_peer(ns)
    peer.cmd("listen 127.0.0.1 7000")
    assert peer.connect("127.0.0.1", 7000, 5) == (5, 0, 0)
    agent.wait_event("tuple", pred=lambda e: e["netns"] == ns.inode and e["connects"] == 5)
    return agent.wait_event("stats")  # the same snapshot's: it follows its tuple lines


@pytest.mark.parametrize("guard", [False, True], ids=["default", "guard"])
def test_stats_show_the_agents_cost(make_agent, make_netns, make_peer, guard):
    stats_before = bpf_stats_value()
    # --audit: the guard's programs run on every connect, and refuse nothing
    a = make_agent("--interval", "1", *(["--guard", "--audit"] if guard else []))
    ev = stats_after_connects(a, make_netns, make_peer)
    stats_now = bpf_stats_value()

    assert ev["bpf_stats"] is (stats_now == "1")
    progs = ev["programs"]
    # the entry programs where loaded
    cost_progs = COST_PROGS
    if not a.start_event["kernel"]["features"]["bpf_task_pt_regs"]:
        cost_progs = cost_progs | ENTRY_PROGS
    assert set(progs) == (cost_progs | GUARD_PROGS if guard else cost_progs)
    for name, p in progs.items():
        assert p["runs"] >= 0 and p["run_time_ns"] >= 0 and p["missed"] >= 0, name
        if p["runs"]:
            # shown to one decimal: 0.05 away at most, and 3929.25 may print as 3929.3
            assert p["ns_per_run"] == pytest.approx(p["run_time_ns"] / p["runs"],
                                                    abs=0.05 + 1e-9)
        else:
            assert p["ns_per_run"] is None and p["run_time_ns"] == 0, name
    # the kernel counts runs only while BPF statistics are on
    if stats_before == stats_now == "1":
        assert progs["tuples_set_state"]["runs"] > 0
    # the flat sums are the sums over the same programs
    assert ev["bpf_run_cnt"] == sum(p["runs"] for p in progs.values())
    assert ev["bpf_run_time_ns"] == sum(p["run_time_ns"] for p in progs.values())
    assert ev["events_missed"] == sum(p["missed"] for p in progs.values())

    maps = ev["maps"]
    assert set(maps) == DATA_MAPS
    assert maps["tuples"]["max_entries"] == 65536 and maps["tuples"]["bytes"] > 0
    # before Linux 6.4 memlock is an estimate, and none is made for a ring buffer
    estimated = not a.start_event["kernel"]["features"]["map_mem_usage"]
    assert all(m["bytes"] > 0 for name, m in maps.items() if not (estimated and name in ("notices", "changes")))
    assert ev["tuples"] >= 1 and ev["tuples_fill"] == round(ev["tuples"] / 65536, 4)

    assert 0 <= ev["agent_cpu_percent"] <= 100 * os.cpu_count()
    assert ev["agent_rss_kib"] > 0
    assert ev["agent_peak_rss_kib"] >= ev["agent_rss_kib"]


def test_stats_time_the_programs_with_bpf_stats_on(make_agent, make_netns, make_peer):
    saved = bpf_stats_value()
    try:
        with open(BPF_STATS, "w") as f:
            f.write("1")
        a = make_agent("--interval", "1")
        ev = stats_after_connects(a, make_netns, make_peer)
    finally:
        with open(BPF_STATS, "w") as f:
            f.write(saved)
    assert ev["bpf_stats"] is True
    p = ev["programs"]["tuples_set_state"]
    # five connects and their servers' sides: at least ten state changes
    assert p["runs"] >= 10
    assert p["run_time_ns"] > 0 and p["ns_per_run"] > 0
    assert p["ns_per_run"] == pytest.approx(p["run_time_ns"] / p["runs"], abs=0.05 + 1e-9)
    assert ev["programs"]["connect_exit"]["runs"] >= 5
    assert ev["bpf_run_time_ns"] >= p["run_time_ns"] > 0
