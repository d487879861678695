# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The connect guard on the real kernel: a namespace with a 100-port range, clients in child
cgroups of a private cgroup subtree the guard is attached to."""
import json
import os
import signal
import time

import pytest

from conftest import EPHPORT, ROOT, cgroup2_mount, eventually, query, remove_cgroups, run
from test_alerts import first, peer_pid

PORT = 8080


@pytest.fixture
def cgroups():
    """A private subtree: root (where the guard attaches), apps and exempt below it."""
    mount = cgroup2_mount()
    if not mount:
        pytest.skip("no cgroup2 hierarchy mounted")
    root = os.path.join(mount, f"ephport-guard-{os.getpid()}")
    dirs = {"root": root, "apps": os.path.join(root, "apps"),
            "other": os.path.join(root, "other"), "exempt": os.path.join(root, "exempt")}
    os.mkdir(root)
    for name in ("apps", "other", "exempt"):
        os.mkdir(dirs[name])
    dirs["rel"] = {k: v[len(mount):] for k, v in dirs.items()}
    try:
        yield dirs
    finally:
        remove_cgroups(mount, [dirs["apps"], dirs["other"], dirs["exempt"], root])


def client(make_peer, ns, cgroup):
    """A peer in the namespace, moved into the cgroup (ip netns exec hides /sys/fs/cgroup
    from the peer itself)."""
    p = make_peer(ns)
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
        f.write(str(peer_pid(p)))
    return p


def wait_checks(agent, n=2):
    """Let the agent run a few pressure checks (twice a second) over the new counts."""
    for _ in range(n):
        agent.wait_event("stats")


def refusal(agent):
    """How a refused connect() fails on this kernel, as the peer counts it (connected,
    EADDRNOTAVAIL, other errors), and its errno name: before Linux 5.18 (no bpf_set_retval)
    a cgroup connect program can only make it EPERM."""
    if agent.start_event["kernel"]["features"]["bpf_set_retval"]:
        return (0, 1, 0), "EADDRNOTAVAIL"
    return (0, 0, 1), "EPERM"


def times(counts, n):
    return tuple(c * n for c in counts)


def denied(agent, ns, **match):
    return [e for e in agent.parsed() if e["event"] == "connect_denied" and e["netns"] == ns.inode
            and all(e[k] == v for k, v in match.items())]


def test_deny_at_the_line_exempt_passes_then_fail_open(make_netns, make_peer, make_agent, cgroups):
    ns = make_netns((40000, 40099))
    server = make_peer(ns)
    server.cmd(f"listen 127.0.0.1 {PORT}")
    app = client(make_peer, ns, cgroups["apps"])
    exempt = client(make_peer, ns, cgroups["exempt"])
    agent = make_agent("--interval", "1", "--guard", "--cgroup-root", cgroups["root"],
                       "--exempt", cgroups["exempt"])
    g = agent.start_event["settings"]["guard"]
    assert g["mode"] == "enforce" and g["cgroup_root"] == cgroups["root"] and g["deny_at"] == 0.98

    assert app.connect("127.0.0.1", PORT, 60) == (60, 0, 0)
    wait_checks(agent)
    assert app.connect("127.0.0.1", PORT, 38) == (38, 0, 0)  # 98 of 100: at the line
    # two ports are free, but the guard refuses at once, with EADDRNOTAVAIL (EPERM before 5.18)
    refused, errno_name = refusal(agent)
    assert g["errno"] == errno_name
    assert app.connect("127.0.0.1", PORT, 3) == times(refused, 3)
    assert exempt.connect("127.0.0.1", PORT, 1) == (1, 0, 0)
    # other protocols pass untouched
    assert app.cmd(f"udp-connect 127.0.0.1 {PORT}") == ["0"]
    assert app.cmd("unix-connect") == ["0"]

    ev = eventually(lambda: first(denied(agent, ns)), timeout=5)
    assert ev["mode"] == "enforce" and ev["reason"] == "utilization"
    assert ev["errno"] == errno_name and ev["deny_at"] == 0.98 and ev["quota"] is None
    assert ev["pid"] == peer_pid(app) and ev["comm"] == "python3"
    assert ev["cgroup"] == cgroups["rel"]["apps"]
    assert (ev["daddr"], ev["dport"], ev["saddr"]) == ("127.0.0.1", PORT, "127.0.0.1")
    assert ev["usage"] == 98 and ev["capacity"] == 100

    q = query("--netns", str(ns.inode))
    assert q["guard"]["mode"] == "enforce" and q["guard"]["cgroup_root"] == cgroups["root"]
    assert [(d["reason"], d["count"], d["dport"]) for d in q["denials"]] == [
        ("utilization", 3, PORT)]
    status = json.loads(run(EPHPORT, "guard", "status", "--json").stdout)
    assert sorted(a["name"] for a in status["attached"]) == ["guard_connect4", "guard_connect6"]

    # fail-open: with the agent gone, nothing is refused any more
    agent.stop(signal.SIGKILL)
    assert app.connect("127.0.0.1", PORT, 1) == (1, 0, 0)
    assert sum(e["count"] for e in denied(agent, ns)) <= 3
    # the pins outlive a killed agent: the next one replaces them, and removes them at exit
    make_agent("--interval", "60")


def test_audit_refuses_nothing_and_reports(make_netns, make_peer, make_agent, cgroups):
    ns = make_netns((40000, 40099))
    server = make_peer(ns)
    server.cmd(f"listen 127.0.0.1 {PORT}")
    app = client(make_peer, ns, cgroups["apps"])
    agent = make_agent("--interval", "1", "--guard", "--audit", "--cgroup-root", cgroups["root"])
    assert app.connect("127.0.0.1", PORT, 60) == (60, 0, 0)
    wait_checks(agent)
    assert app.connect("127.0.0.1", PORT, 40) == (40, 0, 0)  # all 100: nothing refused
    agent.stop()
    evs = denied(agent, ns)
    assert evs and all(e["mode"] == "audit" and e["errno"] is None for e in evs)
    assert sum(e["count"] for e in evs) == 2  # the 99th and 100th would have been refused


def test_eperm_and_quota_per_cgroup(make_netns, make_peer, make_agent, cgroups):
    ns = make_netns((40000, 40099))
    server = make_peer(ns)
    server.cmd(f"listen 127.0.0.1 {PORT}")
    server.cmd(f"listen 127.0.0.1 {PORT + 1}")
    app = client(make_peer, ns, cgroups["apps"])
    other = client(make_peer, ns, cgroups["other"])
    agent = make_agent("--interval", "1", "--guard", "--cgroup-root", cgroups["root"],
                       "--quota", "5", "--deny-errno", "eperm")
    assert app.connect("127.0.0.1", PORT, 7) == (5, 0, 2)  # 2 refused with EPERM
    assert other.connect("127.0.0.1", PORT, 5) == (5, 0, 0)  # its own quota
    assert app.connect("127.0.0.1", PORT + 1, 1) == (1, 0, 0)  # another destination
    app.cmd("reset-clients")
    assert eventually(lambda: _connect_ok(app), timeout=5)  # ports given back: room again
    agent.stop()
    evs = denied(agent, ns, reason="quota")
    assert sum(e["count"] for e in evs) == 2
    assert all(e["errno"] == "EPERM" and e["quota"] == 5 and e["pid"] == peer_pid(app)
               for e in evs)


def _connect_ok(peer):
    assert peer.connect("127.0.0.1", PORT, 1) == (1, 0, 0)
    return True


def test_two_source_addresses(make_netns, make_peer, make_agent, cgroups):
    """Bound to a source address, a socket is judged by its own tuple; unbound, by the most
    used tuple of the namespace to that destination (docs/guard.md)."""
    ns = make_netns((40000, 40099))
    server = make_peer(ns)
    server.cmd(f"listen 127.0.0.1 {PORT}")
    app = client(make_peer, ns, cgroups["apps"])
    agent = make_agent("--interval", "1", "--guard", "--cgroup-root", cgroups["root"])
    assert app.connect("127.0.0.1", PORT, 60, src="127.0.0.2") == (60, 0, 0)
    wait_checks(agent)
    assert app.connect("127.0.0.1", PORT, 38, src="127.0.0.2") == (38, 0, 0)
    refused, _ = refusal(agent)
    assert app.connect("127.0.0.1", PORT, 1, src="127.0.0.2") == refused  # its tuple: full
    assert app.connect("127.0.0.1", PORT, 1, src="127.0.0.1") == (1, 0, 0)  # the other: empty
    assert app.connect("127.0.0.1", PORT, 1) == refused  # unbound: the most used one
    agent.stop()
    # two refusals, in one event with count 2 when they fall between the same two checks
    evs = denied(agent, ns)
    assert [(e["saddr"], e["count"]) for e in evs] in ([("127.0.0.2", 1)] * 2, [("127.0.0.2", 2)])


def test_bad_guard_options(cgroups):
    for args, msg in [(["--quota", "3"], "--quota needs --guard"),
                      (["--guard", "--cgroup-root", "/tmp"], "not a cgroup v2 directory"),
                      (["--guard", "--exempt", "/nonexistent"], "No such file or directory"),
                      (["--guard", "--deny-errno", "eio"], "bad value 'eio' for --deny-errno")]:
        r = run(EPHPORT, "agent", *args, check=False)
        assert r.returncode in (1, 2) and msg in r.stderr and r.stdout == ""
        assert len(r.stderr.splitlines()) <= 2
    assert not os.path.exists("/sys/fs/bpf/ephport")
    r = run(EPHPORT, "guard", "status", check=False)
    assert r.returncode == 1 and "no ephport agent is running" in r.stderr


def test_system_services_exempt_and_a_stopped_agent_refuses_nothing(make_netns, make_peer,
                                                                    make_agent, cgroups):
    """--exempt-system spares system.slice below the root (init.scope is not there: a
    note); an agent that stops checking (SIGSTOP) stops refusing after 5 s, and refuses
    again once it checks."""
    mount = cgroup2_mount()
    services = os.path.join(cgroups["root"], "system.slice")
    kubelet = os.path.join(services, "kubelet.service")
    os.makedirs(kubelet)
    try:
        ns = make_netns((40000, 40099))
        server = make_peer(ns)
        server.cmd(f"listen 127.0.0.1 {PORT}")
        app = client(make_peer, ns, cgroups["apps"])
        node = client(make_peer, ns, kubelet)
        agent = make_agent("--interval", "1", "--guard", "--cgroup-root", cgroups["root"],
                           "--exempt-system")
        assert agent.start_event["settings"]["guard"]["exempt"] == [services]
        assert app.connect("127.0.0.1", PORT, 60) == (60, 0, 0)
        wait_checks(agent)
        assert app.connect("127.0.0.1", PORT, 37) == (37, 0, 0)
        assert node.connect("127.0.0.1", PORT, 1) == (1, 0, 0)  # 98 of 100: at the line
        refused, _ = refusal(agent)
        assert app.connect("127.0.0.1", PORT, 1) == refused
        assert node.connect("127.0.0.1", PORT, 1) == (1, 0, 0)  # the node's services pass

        agent.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(6)  # past GUARD_STALE_NS: the limits it holds are stale
            assert app.connect("127.0.0.1", PORT, 1) == (1, 0, 0)
        finally:
            agent.proc.send_signal(signal.SIGCONT)
        wait_checks(agent)
        assert app.connect("127.0.0.1", PORT, 1) == refused
        stats = agent.wait_event("stats")
        assert stats["guard_stale_passes"] == 1
        agent.stop()
        assert f"note: --exempt-system: no {cgroups['root']}/init.scope" in \
            agent.proc.stderr.read()
    finally:
        remove_cgroups(mount, [kubelet, services])


# the agent's own work at size: its share of a full map per namespace is the same on every
# kernel. Host only: in make vmtest it once let the connect through (6.1, TCG), cause not
# found in 12 runs since; should it fail again, its message says what the guard held
@pytest.mark.host_only
def test_one_namespace_cannot_take_the_guards_map(make_netns, make_peer, make_agent, cgroups):
    """guard_dst holds 16,384 destinations. A namespace with more near the line (a 2-port
    range: one TIME_WAIT socket each is half of it) gets no more than its share: another
    namespace's destination at the line is still guarded, and what did not fit is
    counted (guard_uncovered)."""
    one, two = make_netns((40000, 40001)), make_netns((40000, 40099))
    # updates went in key order, namespace first: the crowd's namespace first
    crowd, ns = (one, two) if one.inode < two.inode else (two, one)
    if crowd is two:
        crowd.sysctl("net.ipv4.ip_local_port_range", "40000 40001")
        ns.sysctl("net.ipv4.ip_local_port_range", "40000 40099")
    crowd.sysctl("net.ipv4.tcp_tw_reuse", 0)
    crowd.sysctl("net.ipv4.tcp_max_tw_buckets", 100000)
    agent = make_agent("--interval", "1", "--guard", "--cgroup-root", cgroups["root"])
    n = 16384 + 200
    start = time.monotonic()
    # --count stops it at n, -d 30 at 30 s (its default, 3 s, made only 3,595 under TCG)
    made = json.loads(crowd.exec(os.path.join(ROOT, "build", "loadgen"), "-c", "fin", "-n", "1",
                                 "-d", "30", "-j", "--addresses", str(n),
                                 "--count", str(n)).stdout)
    took = time.monotonic() - start
    assert made["failures"] == 0, made
    if made["connections"] < n:
        pytest.skip(f"loadgen made {made['connections']:,} of {n:,} connections in "
                    f"{took:.0f} s: too slow here for the crowd to fill the map while its "
                    "TIME_WAIT sockets (60 s) last")
    # the map is full of the crowd's destinations
    stats = agent.wait_event("stats", timeout=15, pred=lambda e: e["guard_uncovered"] > 0)
    assert stats["guard_uncovered"] <= n + 1 - 16384
    server = make_peer(ns)
    server.cmd(f"listen 127.0.0.1 {PORT}")
    app = client(make_peer, ns, cgroups["apps"])
    assert app.connect("127.0.0.1", PORT, 60) == (60, 0, 0)
    wait_checks(agent)
    assert app.connect("127.0.0.1", PORT, 38) == (38, 0, 0)
    wait_checks(agent)
    refused, _ = refusal(agent)
    got = app.connect("127.0.0.1", PORT, 1)
    if got != refused:  # once in make vmtest (6.1), cause not found: say what it was
        stats = [e for e in agent.parsed() if e["event"] == "stats"][-1]
        try:
            keys = [e.get("formatted", e)["key"] for e in map_entries("guard_dst")]
        except AssertionError:  # another agent's map beside it: no count, the rest stands
            keys = []
        ours = [k for k in keys if isinstance(k, dict) and k.get("netns") == ns.inode]
        pytest.fail(f"connect {got}, not refused {refused}: guard_dst has {len(keys)} entries, "
                    f"{len(ours)} of this namespace; stats: " + ", ".join(
                        f"{k} {stats[k]}" for k in ("guard_stale_passes", "guard_uncovered",
                                                    "guard_dst_waits", "tuples", "check_ms_max")))


def map_entries(name):
    """The entries of one of the agent's maps, by its name (cg_ports is not pinned)."""
    maps = [m for m in json.loads(run("bpftool", "-j", "map", "show").stdout)
            if m.get("name") == name]
    assert len(maps) == 1, maps
    return json.loads(run("bpftool", "-j", "map", "dump", "id", str(maps[0]["id"])).stdout)


def test_quota_and_denial_entries_go_with_their_sockets_and_tuple(make_netns, make_peer,
                                                                 make_agent, cgroups):
    """cg_ports (sockets per cgroup and destination) and denials are pruned: a node that
    starts ever new pods, or meets ever new destinations, does not fill them."""
    ns = make_netns((40000, 40099))
    server = make_peer(ns)
    server.cmd(f"listen 127.0.0.1 {PORT}")
    app = client(make_peer, ns, cgroups["apps"])
    agent = make_agent("--interval", "1", "--tuple-idle", "1", "--guard", "--cgroup-root",
                       cgroups["root"], "--quota", "2", "--deny-errno", "eperm")
    assert app.connect("127.0.0.1", PORT, 3) == (2, 0, 1)
    assert len(map_entries("cg_ports")) == 1
    # the agent lists a refusal at its next check
    eventually(lambda: [d["count"] for d in query("--netns", str(ns.inode))["denials"]] == [1],
               timeout=10)
    app.cmd("reset-clients")  # RST: no TIME_WAIT, the tuple holds nothing

    def pruned():
        assert map_entries("cg_ports") == []
        assert query("--netns", str(ns.inode))["denials"] == []
    eventually(pruned, timeout=15)
    agent.wait_event("stats")
