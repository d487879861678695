# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Counts are right from the start: sockets older than the agent, a restarted agent,
namespaces made after it started."""
import signal

from conftest import assert_tuples_are_ss, eventually, query_netns

SERVERS = {7000, 7001}


def assert_all_match_ss(ns):
    got = assert_tuples_are_ss(ns, SERVERS)
    server = query_netns(ns)["server_time_wait"]
    assert {p["port"]: p["time_wait"] for p in server} == dict(ns.ss_server_time_wait(SERVERS))
    return got


def make_mixed_sockets(peer):
    """established, FIN_WAIT2/CLOSE_WAIT, client TIME_WAIT, server TIME_WAIT, a listener
    inside the range."""
    peer.cmd("listen 127.0.0.1 7000")
    peer.cmd("listen ::1 7001")
    peer.cmd("listen 127.0.0.1 40070")
    assert peer.connect("127.0.0.1", 7000, 6) == (6, 0, 0)
    peer.cmd("accepted 6")
    peer.cmd("close-clients")  # client TIME_WAIT
    peer.cmd("close-servers")
    assert peer.connect("::1", 7001, 4) == (4, 0, 0)
    peer.cmd("accepted 4")
    peer.cmd("close-servers")  # server TIME_WAIT on 7001, clients in CLOSE_WAIT
    peer.cmd("close-clients")
    assert peer.connect("127.0.0.1", 7000, 3) == (3, 0, 0)
    peer.cmd("accepted 3")
    peer.cmd("shutdown-clients")  # FIN_WAIT2 / CLOSE_WAIT
    assert peer.connect("::1", 7001, 2) == (2, 0, 0)  # established


def test_sockets_older_than_the_agent_are_counted(make_agent, make_netns, make_peer):
    ns = make_netns()
    peer = make_peer(ns)
    make_mixed_sockets(peer)
    a = make_agent("--interval", "1")
    assert a.start_event["bootstrap"]["netns"] >= 2  # ours and this one
    got = eventually(lambda: assert_all_match_ss(ns))
    assert got[("127.0.0.1", "127.0.0.1", 7000)]["time_wait"] == 6
    assert got[("127.0.0.1", "127.0.0.1", 7000)]["fin_wait2"] == 3
    assert got[("::1", "::1", 7001)]["established"] == 2
    assert query_netns(ns)["bound_ports_in_range"] == 1


def test_killed_and_restarted_agent_matches_ss(make_agent, make_netns, make_peer):
    ns = make_netns()
    peer = make_peer(ns)
    make_mixed_sockets(peer)
    first = make_agent("--interval", "1")
    peer.cmd("churn-start 127.0.0.1 7000")
    first.stop(signal.SIGKILL)
    make_agent("--interval", "1")
    ok, failed = (int(w) for w in peer.cmd("churn-stop"))
    assert ok > 0
    eventually(lambda: assert_all_match_ss(ns))


def test_namespace_made_after_start_is_covered(agent, make_netns, make_peer):
    ns = make_netns()
    peer = make_peer(ns)
    make_mixed_sockets(peer)
    eventually(lambda: assert_all_match_ss(ns))

    def section():  # read inside the namespace once per interval
        n = query_netns(ns)
        assert n["path"] == f"/run/netns/{ns.name}" and n["port_range"] == [40000, 40099]
    eventually(section)
    # the namespace's lines began before its listener: one of them says it
    agent.wait_event("netns", pred=lambda e: e["netns"] == ns.inode and
                     e["bound_ports_in_range"] == 1)
