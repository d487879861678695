# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Which --spread addresses are local in a namespace, as the agent learns them over
rtnetlink inside it: the netns line's spread_addresses and query's, as addresses come
and go. Only namespaces the test makes; the guard attaches to a private cgroup."""
import os

from conftest import EPHPORT, query_netns, run
from test_guard import cgroups  # noqa: F401 (a fixture)

SPREAD = ["127.0.0.2", "198.18.7.1", "fd00:ee::7"]


def local_now(agent, ns, want, timeout=15):
    """The first netns line of ns, read from inside, whose spread_addresses are want."""
    return agent.wait_event("netns", timeout=timeout, pred=lambda e: e["netns"] == ns.inode and
                            e["path"] is not None and e["spread_addresses"] == want)


def test_local_spread_addresses_follow_the_namespace(make_netns, make_agent, cgroups):
    ns = make_netns()
    agent = make_agent("--interval", "1", "--guard", "--cgroup-root", cgroups["root"],
                       "--spread", ",".join(SPREAD))
    # lo up: all of 127.0.0.0/8 is local, the others are on no interface
    local_now(agent, ns, ["127.0.0.2"])
    assert query_netns(ns)["spread_addresses"] == ["127.0.0.2"]

    ns.exec("ip", "addr", "add", "198.18.7.1/32", "dev", "lo")
    ns.exec("ip", "-6", "addr", "add", "fd00:ee::7/128", "dev", "lo", "nodad")
    local_now(agent, ns, SPREAD)
    assert query_netns(ns)["spread_addresses"] == SPREAD
    table = run(EPHPORT, "query", "--netns", str(ns.inode)).stdout
    assert f"{ns.inode} {','.join(SPREAD)}\n" in table, table

    # an AnyIP route makes a whole prefix local, as bind() takes it
    ns.exec("ip", "addr", "del", "198.18.7.1/32", "dev", "lo")
    ns.exec("ip", "-6", "addr", "del", "fd00:ee::7/128", "dev", "lo")
    local_now(agent, ns, ["127.0.0.2"])
    ns.exec("ip", "route", "add", "local", "198.18.0.0/16", "dev", "lo", "table", "local")
    local_now(agent, ns, ["127.0.0.2", "198.18.7.1"])

    ns.exec("ip", "route", "del", "local", "198.18.0.0/16", "dev", "lo", "table", "local")
    local_now(agent, ns, ["127.0.0.2"])


def test_lo_never_up_has_nothing_local(make_netns, make_agent, cgroups):
    # 127.0.0.1/8 comes with lo's first up (and stays when it goes down, as bind() sees)
    name = f"ephport-test-{os.getpid()}-lo"
    run("ip", "netns", "add", name)
    try:
        inode = run("stat", "-L", "-c", "%i", f"/run/netns/{name}").stdout.strip()
        agent = make_agent("--interval", "1", "--guard", "--cgroup-root", cgroups["root"],
                           "--spread", ",".join(SPREAD))
        agent.wait_event("netns", timeout=15, pred=lambda e: e["netns"] == int(inode) and
                         e["path"] is not None and e["spread_addresses"] == [])
    finally:
        run("ip", "netns", "del", name, check=False)


def test_no_spread_no_field(make_netns, agent):
    ns = make_netns()
    line = agent.wait_event("netns", timeout=15, pred=lambda e: e["netns"] == ns.inode and
                            e["path"] is not None)
    assert "spread_addresses" not in line
    assert "spread_addresses" not in query_netns(ns)
    assert "SPREAD_LOCAL" not in run(EPHPORT, "query").stdout
