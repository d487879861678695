# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The guard under bursts: connects far faster than the agent checks (twice a second) stop
at the deny line, because the decision is made in the kernel from live counts at every
connect(). A namespace with a 1,000-port range, --deny-at 0.5: the line is 500 ports."""
import os

import pytest

from conftest import eventually, query
from test_guard import PORT, cgroups, client, refusal  # noqa: F401 (a fixture)

LINE = 500  # ceil(1000 * 0.5)


def held(ns, daddr):
    """Client sockets to (daddr, PORT) in the namespace, as ss lists them."""
    return sum(1 for state, _local, peer in ns.ss_sockets()
               if peer == (daddr, PORT) and state != "LISTEN")


def guarded(make_netns, make_peer, make_agent, cgroups, daddr):
    ns = make_netns((40000, 40999))
    make_peer(ns).cmd(f"listen {daddr} {PORT}")
    app = client(make_peer, ns, cgroups["apps"])
    agent = make_agent("--interval", "1", "--guard", "--deny-at", "0.5",
                       "--cgroup-root", cgroups["root"])
    return ns, app, agent


@pytest.mark.parametrize("daddr", ["127.0.0.1", "::1"])
def test_one_thread_burst_stops_exactly_at_the_line(make_netns, make_peer, make_agent,
                                                    cgroups, daddr):
    ns, app, agent = guarded(make_netns, make_peer, make_agent, cgroups, daddr)
    # 1,500 connects back to back, non-blocking: all of them within one check of the agent
    ok, noport, other = (int(w) for w in app.cmd(f"connect-nb {daddr} {PORT} 1500"))
    refused, _ = refusal(agent)
    assert ok == LINE, (ok, noport, other)
    assert (noport, other) == (1000 * refused[1], 1000 * refused[2])
    assert held(ns, daddr) == LINE
    # the agent's count agrees, and names the refusals
    def at_line():
        found = [t for t in query("--netns", str(ns.inode))["tuples"] if t["usage"] == LINE]
        assert found, f"no tuple at {LINE} yet"
        return found[0]

    def denials():
        q = query("--netns", str(ns.inode))
        assert q["denials"], "no denials yet"
        return q

    t = eventually(at_line, timeout=10)
    assert (t["daddr"], t["dport"], t["capacity"]) == (daddr, PORT, 1000)
    q = eventually(denials, timeout=10)
    assert sum(d["count"] for d in q["denials"]) == 1000


@pytest.mark.parametrize("daddr", ["127.0.0.1", "::1"])
def test_two_thread_burst_passes_the_line_by_one_per_cpu_at_most(make_netns, make_peer,
                                                                 make_agent, cgroups, daddr):
    ns, app, agent = guarded(make_netns, make_peer, make_agent, cgroups, daddr)
    ok, noport, other = (int(w) for w in app.cmd(f"connect-par {daddr} {PORT} 1500 2"))
    assert ok + noport + other == 1500
    assert LINE <= ok <= LINE + min(2, os.cpu_count()), (ok, noport, other)
    assert held(ns, daddr) == ok
