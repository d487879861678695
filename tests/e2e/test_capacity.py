# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Capacity, usage and utilization per tuple, and the namespace section of query."""
from conftest import eventually, query, query_netns, query_tuples

A = ("127.0.0.1", "127.0.0.1", 7000)
B = ("127.0.0.1", "127.0.0.1", 7001)


def listen_both(peer):
    peer.cmd("listen 127.0.0.1 7000")
    peer.cmd("listen 127.0.0.1 7001")


def test_listener_inside_the_range_lowers_capacity(agent, make_netns, make_peer):
    ns = make_netns(port_range=(40000, 40099))
    peer = make_peer(ns)
    listen_both(peer)
    peer.cmd("listen 127.0.0.1 40050")  # inside the range: no connect() may use it
    peer.cmd("listen 127.0.0.1 41000")  # outside: changes nothing
    assert peer.connect(*A[1:], 3) == (3, 0, 0)

    def check():
        t = query_tuples(ns)[A]
        assert (t["capacity"], t["usage"], t["utilization"]) == (99, 3, round(3 / 99, 4))
        assert query_netns(ns)["bound_ports_in_range"] == 1
    eventually(check)


def test_bound_ports_shrink_other_tuples_only(agent, make_netns, make_peer):
    ns = make_netns(port_range=(40000, 40099))
    peer = make_peer(ns)
    listen_both(peer)
    # bind(port 0) before connect(): each port is that socket's alone
    assert peer.cmd("connect-bound 127.0.0.1 7000 4") == ["4", "0", "0"]
    assert peer.connect(*B[1:], 2) == (2, 0, 0)

    def check():
        t = query_tuples(ns)
        assert t[A]["bound_connects"] == 4 and t[B]["bound_connects"] == 0
        # A's own bound sockets are its usage, not a loss of capacity
        assert (t[A]["capacity"], t[A]["usage"]) == (100, 4)
        assert (t[B]["capacity"], t[B]["usage"]) == (96, 2)
        assert query_netns(ns)["bound_ports_in_range"] == 4
    eventually(check)
    peer.cmd("reset-clients")

    def released():
        assert query_netns(ns)["bound_ports_in_range"] == 0
        assert query_tuples(ns)[B]["capacity"] == 100
    eventually(released)


def test_reserved_ports_lower_capacity(agent, make_netns, make_peer):
    ns = make_netns(port_range=(40000, 40099))
    ns.sysctl("net.ipv4.ip_local_reserved_ports", "40010-40019,40090,50000")
    peer = make_peer(ns)
    listen_both(peer)
    assert peer.connect(*A[1:], 2) == (2, 0, 0)

    def check():
        n = query_netns(ns)
        assert n["reserved_ports"] == 11 and n["port_range"] == [40000, 40099]
        assert query_tuples(ns)[A]["capacity"] == 89
    eventually(check)


def test_sorted_by_utilization_with_namespace_section(agent, make_netns, make_peer):
    small = make_netns(port_range=(40000, 40009))
    big = make_netns(port_range=(40000, 40999))
    for ns, n in ((small, 3), (big, 30)):
        peer = make_peer(ns)
        peer.cmd("listen 127.0.0.1 7000")
        assert peer.connect("127.0.0.1", 7000, n) == (n, 0, 0)

    def check():
        doc = query()
        mine = [t for t in doc["tuples"] if t["netns"] in (small.inode, big.inode)]
        # 3 of 10 ports is nearer exhaustion than 30 of 1000, though fewer sockets
        assert [(t["netns"], t["utilization"]) for t in mine] == [(small.inode, 0.3),
                                                                  (big.inode, 0.03)]
        for t in mine:
            assert t["usage"] == t["in_use"] + t["time_wait"] - t["time_wait_reusable"]
        sections = {n["netns"]: n for n in doc["netns"]}
        assert sections[small.inode]["port_range"] == [40000, 40009]
        assert sections[big.inode]["port_range"] == [40000, 40999]
        for n in (sections[small.inode], sections[big.inode]):
            assert (n["path"] or "").startswith("/run/netns/ephport-test-")
            assert set(n) >= {"reserved_ports", "bound_ports_in_range", "tw_reuse",
                              "server_time_wait", "time_wait_client", "time_wait_server"}
    eventually(check)
