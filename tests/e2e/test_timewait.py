# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""TIME_WAIT per tuple through the whole life of the sockets, against ss in the namespace."""
import time

from conftest import ALL_STATES, eventually, query_netns, query_tuples

SERVER = ("127.0.0.1", 7000)
KEY = ("127.0.0.1", "127.0.0.1", 7000)


def assert_tuple_is_ss(ns, key=KEY, server_ports=(7000,), **expect):
    """Every state of the tuple, TIME_WAIT included, equals ss, and the fields in expect
    have those values (ss and ephport can agree on a moment before the sockets settle, a
    window a slow kernel such as a TCG VM widens); returns the tuple."""
    truth = ns.ss_tuples(set(server_ports))[key]
    got = query_tuples(ns).get(key)
    assert got is not None, f"{key} not in query"
    for state in ALL_STATES:
        assert got[state] == truth[state], f"{state}: ephport {got[state]}, ss {truth[state]}"
    for field, value in expect.items():
        assert got[field] == value, f"{field}: {got[field]}, expected {value}"
    return got


def settle(check):
    """eventually(), with the time closes take to settle on a loaded TCG guest: the server's
    close after the clients', and a failure's line, took over 5 s there."""
    return eventually(check, timeout=15)


def agent_read(ns, setting, value):
    """Waits until the agent has read the namespace's setting (it reads them once per
    interval): counts made before it would follow the value it had."""
    def check():
        assert query_netns(ns)[setting] == value
    settle(check)


def client_first_close(peer, n):
    """n connections that the client closes first: n client TIME_WAIT sockets."""
    assert peer.connect(*SERVER, n) == (n, 0, 0)
    peer.cmd(f"accepted {n}")
    peer.cmd("close-clients")
    peer.cmd("close-servers")


def test_client_first_close_counts_time_wait(agent, make_netns, make_peer):
    ns = make_netns()
    peer = make_peer(ns)
    peer.cmd("listen %s %d" % SERVER)
    client_first_close(peer, 12)
    # the server closes after the clients: slow on a TCG guest
    t = settle(lambda: assert_tuple_is_ss(ns, time_wait=12, in_use=0))
    assert (t["time_wait"], t["in_use"]) == (12, 0)
    # no server-side TIME_WAIT: the clients closed first
    assert query_netns(ns)["server_time_wait"] == []


def test_rst_close_leaves_no_time_wait(agent, make_netns, make_peer):
    ns = make_netns()
    peer = make_peer(ns)
    peer.cmd("listen %s %d" % SERVER)
    assert peer.connect(*SERVER, 6) == (6, 0, 0)
    peer.cmd("accepted 6")
    peer.cmd("reset-clients")
    t = settle(lambda: assert_tuple_is_ss(ns, in_use=0))
    assert (t["time_wait"], t["in_use"], t["usage"]) == (0, 0, 0)
    assert t["connects"] == 6


def test_max_tw_buckets_exceeded_makes_no_time_wait(agent, make_netns, make_peer):
    ns = make_netns()
    ns.sysctl("net.ipv4.tcp_max_tw_buckets", 3)
    peer = make_peer(ns)
    peer.cmd("listen %s %d" % SERVER)
    client_first_close(peer, 8)
    t = settle(lambda: assert_tuple_is_ss(ns, time_wait=3, in_use=0))
    assert t["time_wait"] == 3  # the kernel destroyed the other 5 at once
    agent_read(ns, "tcp_max_tw_buckets", 3)


def test_server_closes_first_reported_apart(agent, make_netns, make_peer):
    ns = make_netns()
    peer = make_peer(ns)
    peer.cmd("listen %s %d" % SERVER)
    assert peer.connect(*SERVER, 7) == (7, 0, 0)
    peer.cmd("accepted 7")
    peer.cmd("close-servers")
    peer.cmd("close-clients")

    def check():
        t = assert_tuple_is_ss(ns)
        assert (t["time_wait"], t["usage"]) == (0, 0)
        n = query_netns(ns)
        assert ns.ss_server_time_wait({7000}) == {7000: 7}
        assert n["server_time_wait"] == [{"port": 7000, "time_wait": 7}]
        assert (n["time_wait_server"], n["time_wait_client"], n["time_wait_other"]) == (7, 0, 0)
    # the closing handshakes take seconds in a TCG guest on a busy host
    eventually(check, timeout=20)


def test_tw_reuse_takes_time_wait_ports_back(agent, make_netns, make_peer):
    ns = make_netns(port_range=(40000, 40009))  # 10 ports
    ns.sysctl("net.ipv4.tcp_tw_reuse", 1)
    agent_read(ns, "tw_reuse", 1)
    peer = make_peer(ns)
    peer.cmd("listen %s %d" % SERVER)
    client_first_close(peer, 10)
    t = settle(lambda: assert_tuple_is_ss(ns, time_wait=10))
    # timestamps are on over loopback: tcp_tw_reuse=1 lets connect() take all of them
    assert (t["time_wait"], t["time_wait_reusable"], t["usage"], t["capacity"]) == (10, 10, 0, 10)
    time.sleep(1.2)  # net.ipv4.tcp_tw_reuse_delay: 1 s since the last packet
    # every port is in TIME_WAIT: these connects can only succeed by reusing them
    assert peer.connect(*SERVER, 4) == (4, 0, 0)
    t = settle(lambda: assert_tuple_is_ss(ns, established=4))
    assert (t["established"], t["time_wait"]) == (4, 6)
    assert t["usage"] == 4 and t["utilization"] == 0.4


def test_tw_reuse_off_counts_time_wait_as_usage(agent, make_netns, make_peer):
    ns = make_netns(port_range=(40000, 40009))
    ns.sysctl("net.ipv4.tcp_tw_reuse", 0)
    agent_read(ns, "tw_reuse", 0)
    peer = make_peer(ns)
    peer.cmd("listen %s %d" % SERVER)
    client_first_close(peer, 8)
    t = settle(lambda: assert_tuple_is_ss(ns, time_wait=8))
    assert (t["time_wait"], t["time_wait_reusable"], t["usage"]) == (8, 0, 8)
    assert t["utilization"] == 0.8
    # two ports left; the third connect finds none
    assert peer.connect(*SERVER, 3) == (2, 1, 0)
    t = settle(lambda: assert_tuple_is_ss(ns, failed_connects=1))
    assert (t["usage"], t["utilization"], t["failed_connects"]) == (10, 1.0, 1)


def test_time_wait_expires_with_the_kernel_timer(agent, make_netns, make_peer):
    """The one slow test: TIME_WAIT lasts 60 s (TCP_TIMEWAIT_LEN) plus timer slack."""
    ns = make_netns()
    peer = make_peer(ns)
    peer.cmd("listen %s %d" % SERVER)
    client_first_close(peer, 5)
    assert settle(lambda: assert_tuple_is_ss(ns, time_wait=5))["time_wait"] == 5
    deadline = time.monotonic() + 90
    while ns.ss_tuples({7000})[KEY]["time_wait"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ns.ss_tuples({7000})[KEY]["time_wait"] == 0, "the kernel kept them beyond 90 s"
    t = settle(lambda: assert_tuple_is_ss(ns))
    assert (t["time_wait"], t["usage"]) == (0, 0)


def test_fin_wait2_sub_state_counts_as_ss_lists_it(agent, make_netns, make_peer):
    """A client that shuts down writing, then closes while its peer has not closed,
    leaves a TIME_WAIT minisocket in its FIN-WAIT-2 sub-state: ss lists it as FIN-WAIT-2,
    and so does ephport, until the peer's FIN moves it to TIME_WAIT proper."""
    ns = make_netns()
    peer = make_peer(ns)
    peer.cmd("listen %s %d" % SERVER)
    assert peer.connect(*SERVER, 5) == (5, 0, 0)
    peer.cmd("accepted 5")
    peer.cmd("shutdown-clients")  # full sockets in FIN-WAIT-2
    t = settle(lambda: assert_tuple_is_ss(ns, fin_wait2=5))
    assert (t["fin_wait2"], t["time_wait"], t["in_use"]) == (5, 0, 5)
    peer.cmd("close-clients")  # now minisockets, still FIN-WAIT-2
    assert sum("timer:(timewait," in line
               for line in ns.exec("ss", "-Htano", "state", "fin-wait-2").stdout.splitlines()) == 5
    t = settle(lambda: assert_tuple_is_ss(ns, fin_wait2=5))
    assert (t["fin_wait2"], t["time_wait"]) == (5, 0)
    peer.cmd("close-servers")  # their FIN: TIME_WAIT proper
    t = settle(lambda: assert_tuple_is_ss(ns, time_wait=5))
    assert (t["fin_wait2"], t["time_wait"]) == (0, 5)
