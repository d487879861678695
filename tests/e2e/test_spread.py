# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Spreading over source addresses (--spread) on the real kernel: a namespace with a
100-port range, a server on the wildcard address, clients in a guarded child cgroup that
connect without binding. The spread line is 70 ports, the deny line 98."""
import collections
import signal

import pytest

from conftest import EPHPORT, eventually, query, run
from test_guard import PORT, cgroups, client, refusal  # noqa: F401 (a fixture)

V4 = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
V6 = ["::1", "fd00:ee::2", "fd00:ee::3"]


def per_source(ns, daddr):
    """Client sockets to (daddr, PORT) per source address, as ss lists them."""
    got = collections.Counter()
    for state, (laddr, _lport), peer in ns.ss_sockets():
        if peer == (daddr, PORT) and state != "LISTEN":
            got[laddr] += 1
    return dict(got)


def spread_ready(agent, ns, n):
    """The agent has read the namespace and found n of the --spread addresses local."""
    return agent.wait_event("netns", timeout=15, pred=lambda e: e["netns"] == ns.inode and len(
        e.get("spread_addresses", [])) == n)


def spreading(make_netns, make_peer, make_agent, cgroups, addrs, *extra, server="0.0.0.0"):
    ns = make_netns((40000, 40099))
    for a in addrs:
        if ":" in a and a != "::1":
            ns.exec("ip", "-6", "addr", "add", f"{a}/128", "dev", "lo", "nodad")
    make_peer(ns).cmd(f"listen {server} {PORT}")
    app = client(make_peer, ns, cgroups["apps"])
    agent = make_agent("--interval", "1", "--guard", "--cgroup-root", cgroups["root"],
                       "--spread", ",".join(addrs), *extra)
    return ns, app, agent


def spread_counts(ns):
    """query --json's spread connects per source address chosen, for the namespace."""
    got = collections.Counter()
    for c in query("--netns", str(ns.inode))["spread"]["connects"]:
        got[c["saddr"]] += c["count"]
    return dict(got)


@pytest.mark.parametrize("addrs,server", [(V4, "0.0.0.0"), (V6, "::")], ids=["ipv4", "ipv6"])
def test_spread_takes_the_ports_of_every_source(make_netns, make_peer, make_agent, cgroups,
                                               addrs, server):
    ns, app, agent = spreading(make_netns, make_peer, make_agent, cgroups, addrs, server=server)
    spread_ready(agent, ns, 3)
    dst = addrs[0]
    # 250 connections to one destination: more than one source's 100 ports
    assert app.connect(dst, PORT, 250) == (250, 0, 0)
    got = per_source(ns, dst)
    assert sum(got.values()) == 250 and sorted(got) == sorted(addrs), got
    assert got[dst] >= 70 and all(70 <= n <= 98 for n in got.values()), got
    # on until every source is at the deny line, then refused
    assert app.connect(dst, PORT, 44) == (44, 0, 0)
    assert per_source(ns, dst) == {a: 98 for a in addrs}
    refused, _ = refusal(agent)
    assert app.connect(dst, PORT, 2) == tuple(2 * c for c in refused)
    # what the agent reports agrees with ss: every connection but the first 70 was spread
    want = {a: 98 - (70 if a == dst else 0) for a in addrs}

    # (the agent reads them at its check: a lambda returning False or a dict would not wait)
    def counted():
        got = spread_counts(ns)
        assert got == want, got
    eventually(counted, timeout=10)
    tuples = query("--netns", str(ns.inode))["tuples"]
    assert sorted((t["saddr"], t["usage"]) for t in tuples) == sorted((a, 98) for a in addrs)
    agent.stop()
    lines = [e for e in agent.parsed() if e["event"] == "connect_spread"
             and e["netns"] == ns.inode]
    assert lines and all(e["mode"] == "enforce" and e["daddr"] == dst for e in lines)
    assert sum(e["count"] for e in lines) == sum(want.values())


def test_a_source_not_local_is_never_used(make_netns, make_peer, make_agent, cgroups):
    ns, app, agent = spreading(make_netns, make_peer, make_agent, cgroups,
                               ["127.0.0.1", "198.18.9.9"])
    spread_ready(agent, ns, 1)
    assert app.connect("127.0.0.1", PORT, 98) == (98, 0, 0)
    refused, _ = refusal(agent)
    assert app.connect("127.0.0.1", PORT, 1) == refused
    assert per_source(ns, "127.0.0.1") == {"127.0.0.1": 98}


def test_a_socket_the_application_bound_is_left_alone(make_netns, make_peer, make_agent,
                                                      cgroups):
    ns, app, agent = spreading(make_netns, make_peer, make_agent, cgroups, V4)
    spread_ready(agent, ns, 3)
    assert app.connect("127.0.0.1", PORT, 98, src="127.0.0.1") == (98, 0, 0)
    refused, _ = refusal(agent)
    # bound by the application: judged by its own tuple, never bound elsewhere
    assert app.connect("127.0.0.1", PORT, 1, src="127.0.0.1") == refused
    assert per_source(ns, "127.0.0.1") == {"127.0.0.1": 98}
    # an unbound one is spread
    assert app.connect("127.0.0.1", PORT, 1) == (1, 0, 0)
    assert per_source(ns, "127.0.0.1") == {"127.0.0.1": 98, "127.0.0.2": 1}


def test_audit_binds_nothing_and_reports(make_netns, make_peer, make_agent, cgroups):
    ns, app, agent = spreading(make_netns, make_peer, make_agent, cgroups, V4, "--audit")
    spread_ready(agent, ns, 3)
    assert app.connect("127.0.0.1", PORT, 100) == (100, 0, 0)
    assert per_source(ns, "127.0.0.1") == {"127.0.0.1": 100}
    agent.stop()
    lines = [e for e in agent.parsed() if e["event"] == "connect_spread"]
    assert lines and all(e["mode"] == "audit" for e in lines)
    # from the 71st on, each would have been spread: 30
    assert sum(e["count"] for e in lines) == 30


def test_after_kill_9_nothing_is_spread(make_netns, make_peer, make_agent, cgroups):
    ns, app, agent = spreading(make_netns, make_peer, make_agent, cgroups, V4)
    spread_ready(agent, ns, 3)
    assert app.connect("127.0.0.1", PORT, 75) == (75, 0, 0)
    assert len(per_source(ns, "127.0.0.1")) == 3
    agent.stop(signal.SIGKILL)
    before = per_source(ns, "127.0.0.1")
    assert app.connect("127.0.0.1", PORT, 10) == (10, 0, 0)
    after = per_source(ns, "127.0.0.1")
    assert after["127.0.0.1"] == before["127.0.0.1"] + 10
    assert {a: after[a] for a in V4[1:]} == {a: before[a] for a in V4[1:]}


def test_bad_spread_options(cgroups):
    for args, msg in [(["--spread", "127.0.0.1"], "--spread needs --guard"),
                      (["--guard", "--spread", "nope"], "bad value 'nope' for --spread"),
                      (["--guard", "--spread", "0.0.0.0"], "bad value"),
                      (["--guard", "--spread", "127.0.0.1,127.0.0.1"], "bad value"),
                      (["--guard", "--spread", "127.0.0.1", "--spread-at", "0.99"],
                       "--spread-at (0.99) must be below --deny-at (0.98)")]:
        r = run(EPHPORT, "agent", *args, check=False)
        assert r.returncode in (1, 2) and msg in r.stderr and r.stdout == "", (args, r.stderr)
