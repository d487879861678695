# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Pressure levels and attributed failures, on the real kernel: a known process exhausts a
narrowed port range in a private namespace, and the agent's lines must say so, in order, with
exact failure counts."""
import fcntl
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from conftest import (EPHPORT, cgroup2_mount, check_lines, eventually, query_netns,
                      remove_cgroups, run)
from test_metrics import one, parse, scrape

F_SETPIPE_SZ = 1031

PORT = 8080


def for_tuple(ns, dport=PORT, daddr="127.0.0.1"):
    return lambda e: e["netns"] == ns.inode and e["dport"] == dport and e["daddr"] == daddr


def pressure_events(agent, ns, dport=PORT):
    return [e for e in agent.parsed() if e["event"] == "pressure" and for_tuple(ns, dport)(e)]


def failed_events(agent, ns, pid=None, event="connect_failed"):
    return [e for e in agent.parsed() if e["event"] == event and e["netns"] == ns.inode
            and (pid is None or e["pid"] == pid)]


def first(events):
    assert events, "no such event yet"
    return events[0]


def peer_pid(peer):
    return int(peer.cmd("pid")[0])


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_levels_in_order_then_ok(make_netns, make_peer, make_agent, family):
    addr = "127.0.0.1" if family == "ipv4" else "::1"
    ns = make_netns((40000, 40099))  # 100 ports
    peer = make_peer(ns)
    peer.cmd(f"listen {addr} {PORT}")
    pid = peer_pid(peer)
    agent = make_agent("--interval", "1", "--hold", "2")
    match = lambda e: e["netns"] == ns.inode and e["dport"] == PORT and e["family"] == family

    assert peer.connect(addr, PORT, 85) == (85, 0, 0)
    warn = agent.wait_event("pressure", pred=lambda e: match(e) and e["level"] == "warning")
    assert warn["previous_level"] == "ok"
    assert warn["usage"] == 85 and warn["capacity"] == 100 and warn["utilization"] == 0.85
    assert warn["port_range"] == [40000, 40099]
    assert warn["hint"]["id"] and warn["hint"]["reason"]
    assert "narrow_range" in [h["id"] for h in warn["hints"]]
    assert [p["pid"] for p in warn["top_processes"]] == [pid]
    assert warn["top_processes"][0]["comm"] == "python3"

    assert peer.connect(addr, PORT, 12) == (12, 0, 0)
    crit = agent.wait_event("pressure", pred=lambda e: match(e) and e["level"] == "critical")
    assert crit["previous_level"] == "warning" and crit["usage"] == 97

    # three ports left: the 4th connect on finds none, blocking and non-blocking alike
    assert tuple(int(w) for w in peer.cmd(f"connect-nb {addr} {PORT} 5")) == (3, 2, 0)
    assert peer.connect(addr, PORT, 5) == (0, 5, 0)
    ex = agent.wait_event("pressure", pred=lambda e: match(e) and e["level"] == "exhausted")
    assert ex["previous_level"] == "critical" and ex["usage"] == 100
    assert ex["seconds_to_exhaustion"] == 0

    # the failures the client saw, all attributed to it
    def seven():
        fails = [e for e in failed_events(agent, ns) if match(e)]
        assert sum(e["count"] for e in fails) == 7, fails
        return fails
    fails = eventually(seven, timeout=5)
    for e in fails:
        assert e["pid"] == pid and e["comm"] == "python3" and e["errno"] == "EADDRNOTAVAIL"
        assert e["uid"] == 0 and e["cgroup_id"] > 0 and e["cgroup"].startswith("/")
        assert e["usage"] == 100 and e["capacity"] == 100 and e["utilization"] == 1

    peer.cmd("reset-clients")  # no TIME_WAIT left behind
    ok = agent.wait_event("pressure", timeout=15, pred=lambda e: match(e) and e["level"] == "ok")
    assert ok["previous_level"] == "exhausted" and ok["usage"] == 0
    agent.stop()
    levels = [e["level"] for e in agent.parsed() if e["event"] == "pressure" and match(e)]
    assert levels == ["warning", "critical", "exhausted", "ok"]  # no flapping on the way
    # cleared no sooner than the hold after the last failure
    assert ts_of(ok) - ts_of(ex) >= 2.0
    assert sum(e["count"] for e in failed_events(agent, ns) if match(e)) == 7


def ts_of(e):
    return time.mktime(time.strptime(e["ts"][:19], "%Y-%m-%dT%H:%M:%S")) + int(e["ts"][20:23]) / 1000


def test_hovering_at_the_line_does_not_flap(make_netns, make_peer, make_agent):
    ns = make_netns((40000, 40099))
    peer = make_peer(ns)
    peer.cmd(f"listen 127.0.0.1 {PORT}")
    agent = make_agent("--interval", "1", "--hold", "60")
    peer.connect("127.0.0.1", PORT, 81)
    agent.wait_event("pressure", pred=lambda e: for_tuple(ns)(e) and e["level"] == "warning")
    # down to 77 (within the margin) and back up, several times: no event
    for _ in range(3):
        peer.cmd("reset-clients")
        peer.connect("127.0.0.1", PORT, 77)
        time.sleep(0.6)  # let a check see it (not a pass/fail timing)
        peer.cmd("reset-clients")
        peer.connect("127.0.0.1", PORT, 82)
        time.sleep(0.6)
    agent.stop()
    assert [e["level"] for e in pressure_events(agent, ns)] == ["warning"]


def test_failure_storm_is_bounded_and_exact(make_netns, make_peer, make_agent):
    ns = make_netns((40000, 40009))
    peer = make_peer(ns)
    peer.cmd(f"listen 127.0.0.1 {PORT}")
    pid = peer_pid(peer)
    agent = make_agent("--interval", "1")
    assert peer.connect("127.0.0.1", PORT, 10) == (10, 0, 0)
    started = time.monotonic()
    noport, other = (int(w) for w in peer.cmd(f"hammer 127.0.0.1 {PORT} 60000"))
    elapsed = time.monotonic() - started
    assert noport == 60000 and other == 0
    agent.wait_event("stats", pred=lambda e: e["failure_lines"] > 0)
    agent.stop()
    lines = [e for e in failed_events(agent, ns, pid) if for_tuple(ns)(e)]
    print(f"{noport} failures in {elapsed:.2f} s: {len(lines)} lines")
    assert sum(e["count"] for e in lines) == noport
    # one line a second at most, plus the first one and the last at stop
    assert len(lines) <= elapsed + 3, (len(lines), elapsed)
    stats = [e for e in agent.parsed() if e["event"] == "stats"]
    assert stats and stats[-1]["failures_dropped"] == 0 and stats[-1]["notices_lost"] == 0


def test_bind_port_zero_exhaustion(make_netns, make_peer, make_agent):
    ns = make_netns((40000, 40009))
    peer = make_peer(ns)
    pid = peer_pid(peer)
    agent = make_agent("--interval", "1")
    ok, inuse, other = (int(w) for w in peer.cmd("bind 127.0.0.1 13"))
    assert (ok, inuse, other) == (10, 3, 0)
    ev = eventually(lambda: first(failed_events(agent, ns, pid, "bind_failed")), timeout=5)
    assert ev["errno"] == "EADDRINUSE" and ev["protocol"] == "tcp"
    assert ev["saddr"] == "127.0.0.1" and ev["comm"] == "python3"
    agent.stop()
    assert sum(e["count"] for e in failed_events(agent, ns, pid, "bind_failed")) == 3
    assert not failed_events(agent, ns, pid)  # no connect_failed for it


@pytest.fixture
def pod_cgroup():
    """A cgroup named like a Kubernetes pod's container (systemd driver, containerd)."""
    mount = cgroup2_mount()
    if not mount:
        pytest.skip("no cgroup2 hierarchy mounted")
    pod = str(uuid.uuid4())
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    rel = ["ephport-test-%d" % os.getpid(), "kubepods.slice", "kubepods-besteffort.slice",
           "kubepods-besteffort-pod%s.slice" % pod.replace("-", "_"),
           "cri-containerd-%s.scope" % cid]
    dirs = [os.path.join(mount, *rel[:i + 1]) for i in range(len(rel))]
    for d in dirs:
        os.mkdir(d)
    try:
        yield dirs[-1], "/" + "/".join(rel), pod, cid
    finally:
        remove_cgroups(mount, reversed(dirs))


def test_pod_attribution(make_netns, make_peer, make_agent, pod_cgroup):
    path, rel, pod, cid = pod_cgroup
    # an even number of ports: with an odd one, connect() may leave one unused
    ns = make_netns((40000, 40003))
    peer = make_peer(ns)
    peer.cmd(f"listen 127.0.0.1 {PORT}")
    pid = peer_pid(peer)
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(pid))
    agent = make_agent("--interval", "1")
    assert peer.connect("127.0.0.1", PORT, 5) == (4, 1, 0)
    ev = eventually(lambda: first(failed_events(agent, ns, pid)), timeout=5)
    assert ev["cgroup"] == rel
    assert ev["pod_uid"] == pod and ev["container_id"] == cid
    assert ev["cgroup_id"] == os.stat(path).st_ino
    ex = agent.wait_event("pressure", pred=lambda e: for_tuple(ns)(e) and e["level"] == "exhausted")
    top = ex["top_processes"]
    assert top and top[0]["pid"] == pid and top[0]["pod_uid"] == pod
    assert top[0]["container_id"] == cid


def test_a_namespace_names_its_pod(make_netns, make_peer, make_agent, pod_cgroup):
    """A namespace whose first process is in a pod's container cgroup (a pod's sandbox) is
    named by that pod and container: in its netns line, in query (the table and --json)
    and in ephport_netns_info; a namespace outside any container by neither."""
    path, _, pod, cid = pod_cgroup
    ns, bare = make_netns((40000, 40099)), make_netns((40000, 40099))
    peer, other = make_peer(ns), make_peer(bare)
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(peer_pid(peer)))
    for p in (peer, other):
        p.cmd(f"listen 127.0.0.1 {PORT}")
    agent = make_agent("--interval", "1", "--metrics-addr", "127.0.0.1:0")
    for p in (peer, other):
        assert p.connect("127.0.0.1", PORT, 1) == (1, 0, 0)
    named = {ns.inode: (cid, pod), bare.inode: (None, None)}
    for inode, ids in named.items():
        line = agent.wait_event("netns", pred=lambda e, i=inode: e["netns"] == i)
        assert (line["container_id"], line["pod_uid"]) == ids, line
    eventually(lambda: [(n["container_id"], n["pod_uid"]) for n in (query_netns(ns),
                        query_netns(bare))] == [(cid, pod), (None, None)], timeout=10)
    table = run(EPHPORT, "query", "--netns", str(ns.inode)).stdout.splitlines()
    head = next(i for i, row in enumerate(table) if row.startswith("NETNS      PORT_RANGE"))
    assert table[head].split()[-2:] == ["POD", "PATH"], table[head]
    assert table[head + 1].split()[0] == str(ns.inode)
    assert table[head + 1].split()[-2] == pod, table[head + 1]
    got = parse(scrape(agent))
    assert one(got, "ephport_netns_info", netns=ns.inode) == 1
    assert one(got, "ephport_netns_info", netns=ns.inode, pod_uid=pod, container_id=cid) == 1
    assert one(got, "ephport_netns_info", netns=bare.inode, pod_uid="", container_id="") == 1
    # its first process gone, the next one (outside any pod) names it: no pod any more
    sleeper = subprocess.Popen(["ip", "netns", "exec", ns.name, "sleep", "60"])
    try:
        peer.stop()
        agent.wait_event("netns", timeout=15, pred=lambda e: e["netns"] == ns.inode
                         and e["pod_uid"] is None and e["container_id"] is None)
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.any_kernel
def test_output_file_reopened_on_sighup(make_agent, make_netns, make_peer, tmp_path):
    out = tmp_path / "events.jsonl"
    ns = make_netns((40000, 40003))
    peer = make_peer(ns)
    peer.cmd(f"listen 127.0.0.1 {PORT}")
    agent = make_agent("--interval", "1", "--output", str(out))
    assert peer.connect("127.0.0.1", PORT, 5) == (4, 1, 0)
    eventually(lambda: _assert_in(out, "connect_failed"), timeout=5)
    os.rename(out, tmp_path / "events.jsonl.1")
    agent.proc.send_signal(signal.SIGHUP)
    assert peer.connect("127.0.0.1", PORT, 2) == (0, 2, 0)
    eventually(lambda: _assert_in(out, "connect_failed"), timeout=5)
    agent.stop()
    assert agent.proc.returncode == 0
    old = agent.parse_file(tmp_path / "events.jsonl.1")
    new = agent.parse_file(out)
    assert old[0]["event"] == "agent_start" and new[-1]["event"] == "agent_stop"
    fails = [e for e in old + new if e["event"] == "connect_failed"]
    assert sum(e["count"] for e in fails) == 3
    assert agent.lines == []  # nothing on stdout


def _assert_in(path, event):
    assert path.exists() and f'"event":"{event}"' in path.read_text()


@pytest.mark.any_kernel
def test_stuck_output_drops_and_counts(tmp_path):
    """Standard output is a small pipe nobody reads for a while: the agent does not wait for
    it (a writer that waited would drop nothing); it drops the lines that do not fit, counts
    them, and says so once read again."""
    # 4 KiB of queue: a stats line (about 2 KiB) fits beside a netns line once the pipe is
    # read again. With 1 KiB it fit only into an empty queue, a race with the writer thread
    # that a slow guest lost for many seconds in a row (6.1 under TCG)
    proc = subprocess.Popen([EPHPORT, "agent", "--interval", "1", "--output-buffer", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        fcntl.fcntl(proc.stdout.fileno(), F_SETPIPE_SZ, 4096)
        time.sleep(8)  # 8 snapshots, well over 4 KiB of pipe and 4 KiB of queue
        deadline = time.monotonic() + 15
        dropped = None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            e = json.loads(line)
            # lines were dropped, and the agent went on checking twice a second meanwhile
            if e["event"] == "stats" and e["lines_dropped"] > 0 and e["pressure_checks"] >= 8:
                dropped = e
                break
            assert time.monotonic() < deadline, "no stats line with lines_dropped > 0"
        assert dropped
        proc.send_signal(signal.SIGINT)
        lines += proc.stdout.readlines()
        assert proc.wait(timeout=10) == 0
        assert json.loads(lines[-1])["event"] == "agent_stop"
        check_lines(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
