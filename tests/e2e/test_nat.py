# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Source NAT per NAT tuple, as the agent reports it (docs/nat.md): a client namespace,
a router namespace that masquerades, a server namespace (tests/e2e/nat.py). The agent's
counts per NAT tuple and state, and its origins, are compared with `conntrack -L` in the
router through connections opening, closing and expiring; a client runs a 100-port range
out; namespaces without NAT, and --no-nat, add nothing."""
import os
import subprocess
import urllib.request

import pytest

import nat
from conftest import EPHPORT, eventually, query
from test_alerts import pod_cgroup  # noqa: F401 (a fixture)

PORT = 8080


@pytest.fixture
def make_topology():
    made = []

    def make(nat_range=None):
        t = nat.Topology(nat_range)
        made.append(t)
        return t

    yield make
    for t in made:
        t.delete()


def inode(ns):
    return os.stat(f"/run/netns/{ns}").st_ino


def nat_rows(t):
    """the agent's NAT tuples of the router: {(proto, saddr, daddr, dport): row}"""
    q = query("--netns", str(inode(t.router)))
    return {(r["protocol"], r["saddr"], r["daddr"], r["dport"]): r for r in q["nat"]}


def assert_nat_is_conntrack(t):
    """every NAT tuple of the router, state by state and origin by origin, as conntrack
    lists its entries; the rows, by key"""
    states, origins = t.conntrack()
    rows = nat_rows(t)
    assert set(rows) == set(states), (rows.keys(), states)
    for key, row in rows.items():
        for state, n in row["states"].items():
            assert n == states[key][state], f"{key} {state}: ephport {n}, conntrack " \
                                            f"{states[key][state]}"
        assert row["usage"] == sum(states[key].values())
        assert row["origins_total"] == len(origins[key])
        assert {o["saddr"]: o["entries"] for o in row["origins"]} == dict(origins[key])
    return rows


def settled(t, key, state, n):
    """the agent equals conntrack, and key has n entries in state (the last ACK of a
    handshake may still be on its way when connect() returns)"""
    rows = assert_nat_is_conntrack(t)
    assert key in rows, rows
    assert rows[key]["states"][state] == n, rows[key]["states"]
    return rows


def nat_line(agent, level):
    return agent.wait_event("nat_pressure", timeout=15, pred=lambda e: e["level"] == level)


@pytest.mark.parametrize("nat_range", [None, (40000, 40099)], ids=["default", "range"])
def test_nat_tuples_are_conntracks(make_agent, make_topology, nat_range):
    t = make_topology(nat_range)
    if nat_range:
        # TIME_WAIT entries expire after 30 s instead of 120 s, to see them go: long enough
        # to see them all in TIME_WAIT first on a slow machine (with 5 s, and under TCG with
        # 20 s, some were gone before the agent and conntrack were compared)
        t.exec(t.router, "sysctl", "-q", "-w",
               "net.netfilter.nf_conntrack_tcp_timeout_time_wait=30")
    make_agent("--interval", "1")
    t.start_server(PORT)
    clients = t.connect(PORT, 40)
    key = ("tcp", nat.ROUTER_OUT, nat.SERVER_ADDR, PORT)
    row = eventually(lambda: settled(t, key, "established", 40), timeout=15)[key]
    if nat_range:
        assert (row["capacity"], row["range"]["source"]) == (100, "rule")
    else:
        assert (row["capacity"], row["range"]["source"]) == (65535 - 1024 + 1, "default")
    assert row["origins"] == [{"saddr": nat.CLIENT_ADDR, "entries": 40,
                               "netns": inode(t.client)}]
    clients.close()
    # closed: what conntrack holds of them is TIME_WAIT, and the agent has the same (on
    # 5.10 a few entries of 40 leave the table at once instead: conntrack decides)
    def closed():
        rows = assert_nat_is_conntrack(t)
        assert key in rows, rows
        states = rows[key]["states"]
        assert states["time_wait"] > 0 and states["time_wait"] == rows[key]["usage"], states
    eventually(closed, timeout=20)
    t.udp(9090, 5)
    udp = ("udp", nat.ROUTER_OUT, nat.SERVER_ADDR, 9090)
    rows = eventually(lambda: settled(t, udp, "udp", 5), timeout=15)
    assert rows[udp]["states"] == {"udp": 5}
    # the TIME_WAIT entries expire (conntrack's garbage collection reaps them in its time);
    # once is enough: the range makes no difference to it
    if nat_range:
        def expired():
            assert key not in assert_nat_is_conntrack(t), "still there"
        eventually(expired, timeout=120)


def test_a_client_runs_out_of_nat_ports(make_agent, make_topology):
    t = make_topology((40000, 40099))
    other = t.add_client()
    agent = make_agent("--interval", "1", "--metrics-addr", "127.0.0.1:0")
    t.start_server(PORT)
    first = t.connect(PORT, 60)
    assert t.try_connect(other, PORT, 25, 5)[0] == (25, 0)
    key = ("tcp", nat.ROUTER_OUT, nat.SERVER_ADDR, PORT)
    # the line comes when the agent reads the usage past 80: the second client's last
    # connects may still be on their way then (a TCG guest's are slow)
    line = nat_line(agent, "warning")
    assert (line["capacity"], line["saddr"]) == (100, nat.ROUTER_OUT)
    assert 80 <= line["usage"] <= 85, line["usage"]
    assert [(o["saddr"], o["entries"], o["netns"]) for o in line["origins"]] == [
        (nat.CLIENT_ADDR, 60, inode(t.client)),
        ("198.18.2.2", line["usage"] - 60, inode(other))]
    assert any(h["id"] == "nat_more_addresses" for h in line["hints"])
    rows = eventually(lambda: settled(t, key, "established", 85), timeout=15)
    assert [(o["saddr"], o["entries"], o["netns"]) for o in rows[key]["origins"]] == [
        (nat.CLIENT_ADDR, 60, inode(t.client)), ("198.18.2.2", 25, inode(other))]
    more = t.connect(PORT, 12)
    line = nat_line(agent, "critical")
    assert 95 <= line["usage"] <= 97, line["usage"]
    eventually(lambda: settled(t, key, "established", 97), timeout=15)
    # the NAT has 3 ports left: the rest of 10 find none, and their SYNs are dropped
    (made, failed), late = t.try_connect(other, PORT, 10, 1)
    assert made <= 3 and failed >= 7, (made, failed)
    line = nat_line(agent, "exhausted")
    assert line["insert_failed_rise"] > 0
    assert any(h["id"] == "nat_insert_failed" for h in line["hints"])
    ns = [n for n in query()["nat_netns"] if n["netns"] == inode(t.router)]
    assert ns and ns[0]["insert_failed"] >= failed
    assert_nat_is_conntrack(t)
    # /metrics: the tuple's own series
    url = agent.start_event["settings"]["metrics"]["url"]
    series = (f'ephport_nat_tuple_usage{{netns="{inode(t.router)}",protocol="tcp",'
              f'family="ipv4",saddr="{nat.ROUTER_OUT}",daddr="{nat.SERVER_ADDR}",'
              f'dport="{PORT}"}}')

    def scraped():
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        found = [line for line in text.splitlines() if line.startswith(series + " ")]
        assert found and float(found[0].split()[1]) >= 97, found
    eventually(scraped, timeout=15)
    for c in (first, more, late):
        c.end()


def test_without_nat_nothing_is_counted(make_agent, make_topology):
    t = make_topology()
    # the client namespace has no NAT rules: its own connections are not NAT tuples
    make_agent("--interval", "1", "--no-nat")
    t.start_server(PORT)
    clients = t.connect(PORT, 5)
    q = query()
    assert (q["nat_enabled"], q["nat"], q["nat_netns"]) == (False, [], [])
    clients.end()


def test_only_namespaces_with_nat_rules_are_watched(make_agent, make_topology):
    t = make_topology()
    make_agent("--interval", "1")
    t.start_server(PORT)
    clients = t.connect(PORT, 5)
    eventually(lambda: assert_nat_is_conntrack(t), timeout=15)
    watched = {n["netns"] for n in query()["nat_netns"]}
    assert inode(t.router) in watched
    assert not watched & {inode(t.client), inode(t.server)}
    clients.end()


def test_nat_range_overrides_the_rules(make_agent, make_topology):
    t = make_topology((40000, 40099))
    make_agent("--interval", "1", "--nat-range", "40000-40009")
    t.start_server(PORT)
    clients = t.connect(PORT, 3)
    key = ("tcp", nat.ROUTER_OUT, nat.SERVER_ADDR, PORT)
    row = eventually(lambda: settled(t, key, "established", 3), timeout=15)[key]
    assert (row["capacity"], row["range"]) == (10, {"low": 40000, "high": 40009,
                                                    "source": "override",
                                                    "ambiguous": False})
    clients.end()


@pytest.mark.parametrize("args, says", [
    (["--nat-range", "5-1"], "--nat-range"),
    (["--nat-range", "0-10"], "--nat-range"),
    (["--nat-range", "x"], "--nat-range"),
    (["--nat-warn-at", "0.9", "--nat-critical-at", "0.8"], "--nat-warn-at"),
    (["--nat-warn-at", "0.04"], "--clear-margin"),
])
@pytest.mark.any_kernel
def test_bad_nat_options_get_one_line(args, says):
    r = subprocess.run([EPHPORT, "agent", *args], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and r.stdout == "", r
    lines = r.stderr.splitlines()
    assert len(lines) >= 1 and says in lines[0], r.stderr


def test_an_origin_names_its_pod(make_agent, make_topology, pod_cgroup):
    """The client namespace holds a process in a pod's container cgroup (as a pod's sandbox
    does): the origin names the container and the pod, though the namespace was found by
    its /run/netns name."""
    path, _, pod, cid = pod_cgroup
    t = make_topology()
    sandbox = t.spawn(t.client, "sleep", "120", stdin=subprocess.DEVNULL)
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(sandbox.pid))
    make_agent("--interval", "1")
    t.start_server(PORT)
    clients = t.connect(PORT, 3)
    key = ("tcp", nat.ROUTER_OUT, nat.SERVER_ADDR, PORT)
    row = eventually(lambda: settled(t, key, "established", 3), timeout=15)[key]
    assert row["origins"] == [{"saddr": nat.CLIENT_ADDR, "entries": 3, "netns": inode(t.client),
                               "container_id": cid, "pod_uid": pod}]
    clients.end()
    sandbox.kill()
    sandbox.wait()
