# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Per-tuple, per-state counts of the real agent against ss in the same namespace."""
from conftest import ALL_STATES, LIVE_STATES, eventually, query, query_tuples

SERVER_PORTS = {7000, 7001}

# (connect to, port, connections, source address bound without a port)
CLIENTS = [
    ("127.0.0.1", 7000, 5, None),
    ("::ffff:127.0.0.1", 7000, 3, None),  # IPv6 socket, IPv4-mapped peer: the IPv4 tuple
    ("127.0.0.2", 7000, 1, None),  # the route picks source 127.0.0.1
    ("127.0.0.2", 7000, 2, "127.0.0.2"),
    ("::1", 7001, 4, None),
]
EXPECTED = {
    ("127.0.0.1", "127.0.0.1", 7000): 8,
    ("127.0.0.1", "127.0.0.2", 7000): 1,
    ("127.0.0.2", "127.0.0.2", 7000): 2,
    ("::1", "::1", 7001): 4,
}


def assert_matches_ss(ns, expect_tuples=EXPECTED):
    truth = ns.ss_tuples(SERVER_PORTS)
    got = query_tuples(ns)
    assert set(got) == set(expect_tuples), "tuples in the namespace"
    for key, t in got.items():
        for state in ALL_STATES:
            assert t[state] == truth[key][state], f"{key} {state}: ephport {t[state]}, ss {truth[key][state]}"
        assert t["in_use"] == sum(truth[key][s] for s in LIVE_STATES), f"{key} in_use"
    return got


def start_servers(peer):
    peer.cmd("listen 127.0.0.1 7000")
    peer.cmd("listen 127.0.0.2 7000")
    peer.cmd("listen ::1 7001")


def connect_all(peer):
    for addr, port, n, src in CLIENTS:
        assert peer.connect(addr, port, n, src) == (n, 0, 0)
    peer.cmd(f"accepted {sum(c[2] for c in CLIENTS)}")


def test_client_closes_first_matches_ss_at_each_step(agent, make_netns, make_peer):
    ns = make_netns()
    peer = make_peer(ns)
    start_servers(peer)
    connect_all(peer)

    got = eventually(lambda: assert_matches_ss(ns))
    for key, n in EXPECTED.items():
        assert got[key]["established"] == n
        assert got[key]["connects"] == n
        assert got[key]["failed_connects"] == 0
        assert got[key]["bound_connects"] == 0  # IP_BIND_ADDRESS_NO_PORT binds no port
        assert got[key]["family"] == ("ipv6" if ":" in key[0] else "ipv4")
        assert got[key]["netns"] == ns.inode

    # half-close: the clients wait in FIN_WAIT2, the servers in CLOSE_WAIT
    peer.cmd("shutdown-clients")

    def half_closed():
        # ss and ephport may agree on a moment in FIN_WAIT1 too: wait for FIN_WAIT2
        got = assert_matches_ss(ns)
        for key, n in EXPECTED.items():
            assert got[key]["fin_wait2"] == n and got[key]["established"] == 0
    eventually(half_closed)

    # servers close: clients go to TIME_WAIT, which holds the port but no live socket
    peer.cmd("close-servers")
    peer.cmd("close-clients")

    def timed_wait():
        got = assert_matches_ss(ns)
        for key, n in EXPECTED.items():
            assert got[key]["in_use"] == 0
            assert got[key]["time_wait"] == n
            assert got[key]["connects"] == n
    eventually(timed_wait)


def test_server_closes_first_close_wait(agent, make_netns, make_peer):
    ns = make_netns()
    peer = make_peer(ns)
    start_servers(peer)
    connect_all(peer)
    peer.cmd("close-servers")
    got = eventually(lambda: assert_matches_ss(ns))
    for key, n in EXPECTED.items():
        assert got[key]["close_wait"] == n and got[key]["in_use"] == n
    peer.cmd("close-clients")
    got = eventually(lambda: assert_matches_ss(ns))
    assert all(t["in_use"] == 0 for t in got.values())


def test_server_side_and_other_namespaces_kept_apart(agent, make_netns, make_peer):
    a, b = make_netns(), make_netns()
    pa, pb = make_peer(a), make_peer(b)
    for p in (pa, pb):
        p.cmd("listen 127.0.0.1 7000")
    assert pa.connect("127.0.0.1", 7000, 6) == (6, 0, 0)
    assert pb.connect("127.0.0.1", 7000, 9) == (9, 0, 0)
    pa.cmd("accepted 6")
    pb.cmd("accepted 9")

    def check():
        ta, tb = query_tuples(a), query_tuples(b)
        # the accepted sockets (local port 7000, peer port ephemeral) are not tuples
        assert list(ta) == [("127.0.0.1", "127.0.0.1", 7000)]
        assert list(tb) == [("127.0.0.1", "127.0.0.1", 7000)]
        assert ta[("127.0.0.1", "127.0.0.1", 7000)]["established"] == 6
        assert tb[("127.0.0.1", "127.0.0.1", 7000)]["established"] == 9
        assert a.ss_tuples({7000})[("127.0.0.1", "127.0.0.1", 7000)]["established"] == 6
    eventually(check)


def test_exhausted_range_counts_failed_connects(agent, make_netns, make_peer):
    ns = make_netns(port_range=(40000, 40009))  # 10 ports
    peer = make_peer(ns)
    peer.cmd("listen 127.0.0.1 7000")
    connected, noport, other = peer.connect("127.0.0.1", 7000, 17)
    assert (connected, other) == (10, 0)
    assert noport == 7

    def check():
        t = query_tuples(ns)[("127.0.0.1", "127.0.0.1", 7000)]
        assert t["failed_connects"] == noport
        assert t["connects"] == 17
        assert t["established"] == 10 == t["in_use"]
    eventually(check)
    # the pool is per destination: another destination still gets ports
    peer.cmd("listen 127.0.0.2 7000")
    assert peer.connect("127.0.0.2", 7000, 3) == (3, 0, 0)


def test_failed_connect_on_a_reused_socket(agent, make_netns, make_peer):
    """A socket whose first connect() was refused (it had a port) and whose second one
    finds the range full: only the second is a failed connect, and to its own tuple."""
    ns = make_netns(port_range=(40000, 40003))
    peer = make_peer(ns)
    peer.cmd("listen 127.0.0.1 7000")
    assert peer.connect("127.0.0.1", 7000, 4) == (4, 0, 0)
    ECONNREFUSED, EADDRNOTAVAIL = 111, 99
    assert peer.cmd("connect-again 127.0.0.1 7999 127.0.0.1 7000") == [
        str(ECONNREFUSED), str(EADDRNOTAVAIL)]

    def check():
        t = query_tuples(ns)
        refused, full = t[("127.0.0.1", "127.0.0.1", 7999)], t[("127.0.0.1", "127.0.0.1", 7000)]
        assert (refused["connects"], refused["failed_connects"], refused["in_use"]) == (1, 0, 0)
        assert (full["connects"], full["failed_connects"], full["in_use"]) == (5, 1, 4)
    eventually(check)


def test_query_filters(agent, make_netns, make_peer):
    ns = make_netns()
    peer = make_peer(ns)
    start_servers(peer)
    connect_all(peer)
    eventually(lambda: assert_matches_ss(ns))
    nsarg = ["--netns", str(ns.inode)]

    def keys(*args):
        return sorted((t["saddr"], t["daddr"], t["dport"]) for t in query(*nsarg, *args)["tuples"])

    assert keys("--dst", "127.0.0.2") == [("127.0.0.1", "127.0.0.2", 7000),
                                          ("127.0.0.2", "127.0.0.2", 7000)]
    assert keys("--dst", "127.0.0.1:7000") == [("127.0.0.1", "127.0.0.1", 7000)]
    assert keys("--dst", "127.0.0.2:7000", "--src", "127.0.0.1") == [("127.0.0.1", "127.0.0.2", 7000)]
    assert keys("--dst", "127.0.0.1:7001") == []
    assert keys("--dst", "::ffff:127.0.0.1") == [("127.0.0.1", "127.0.0.1", 7000)]
    assert keys("--dst", "[::1]:7001") == [("::1", "::1", 7001)]
    assert keys("--dst", "::1") == [("::1", "::1", 7001)]
    assert keys("--src", "127.0.0.2") == [("127.0.0.2", "127.0.0.2", 7000)]
    assert keys("--src", "::1", "--dst", "127.0.0.1") == []
    # sorted by usage: the 8-connection tuple first
    first = query(*nsarg)["tuples"][0]
    assert (first["daddr"], first["in_use"]) == ("127.0.0.1", 8)
