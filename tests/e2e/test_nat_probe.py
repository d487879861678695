# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""nat_ct.c through build/nat_probe in a router namespace that masquerades: its counts
per NAT tuple and state, and its origins, are conntrack -L's, from the first dump, over
NEW/UPDATE/DESTROY events, and after events were lost (ENOBUFS) and it dumped again."""
import json
import os
import shutil
import subprocess
import time

import pytest

import nat

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAT_PROBE = os.path.join(ROOT, "build", "nat_probe")
PORT = 8080


@pytest.fixture
def topo(request):
    if not shutil.which("conntrack") or not shutil.which("nft"):
        pytest.skip("conntrack and nft (conntrack, nftables packages) are needed")
    if not os.access(NAT_PROBE, os.X_OK):
        pytest.skip(f"{NAT_PROBE} is not built (make build/nat_probe)")
    t = nat.Topology(getattr(request, "param", None))
    yield t
    t.delete()


class Probe:
    def __init__(self, topo, *args, outside=False):
        """in the router namespace, or started outside it (it enters it by path)"""
        if outside:
            self.proc = subprocess.Popen([NAT_PROBE, *args, f"/run/netns/{topo.router}"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
            topo.procs.append(self.proc)
        else:
            self.proc = topo.spawn(topo.router, NAT_PROBE, *args, f"/run/netns/{topo.router}")
        nat.expect(self.proc, '{"type":"synced"}')

    def stop(self):
        """ends it; its tuples as conntrack() gives them, and its stats"""
        out, err = self.proc.communicate("", timeout=30)
        assert self.proc.returncode == 0, err
        states, origins, stats = {}, {}, None
        for line in out.splitlines():
            o = json.loads(line)
            if o["type"] == "stats":
                stats = o
                continue
            key = (o["protocol"], o["saddr"], o["daddr"], o["dport"])
            states[key] = {s: n for s, n in o["states"].items() if n}
            origins[key] = {g["addr"]: g["count"] for g in o["origins"]}
            assert o["usage"] == sum(o["states"].values())
        return states, origins, stats


def settle(topo, key, n, timeout=10):
    """waits until conntrack -L has n entries of key, none on its way to TIME_WAIT (the
    last FINs and ACKs); a few end in CLOSE, reset, and leave 10 s later. Its states."""
    deadline = time.monotonic() + timeout
    while True:
        states = dict(topo.conntrack()[0].get(key, {}))
        if sum(states.values()) == n and not set(states) - {"established", "time_wait",
                                                             "close"}:
            return states
        assert time.monotonic() < deadline, states
        time.sleep(0.1)


def assert_is_conntrack(topo, states, origins):
    ct_states, ct_origins = topo.conntrack()
    assert states == {k: dict(v) for k, v in ct_states.items()}
    assert origins == {k: dict(v) for k, v in ct_origins.items()}


@pytest.mark.parametrize("topo", [None, (40000, 40099)], indirect=True,
                         ids=["masquerade", "masquerade-range"])
def test_counts_are_conntrack(topo):
    topo.start_server(PORT)
    before = topo.connect(PORT, 5)     # in the first dump: TIME_WAIT
    before.close()
    time.sleep(0.5)
    # entries made while nobody listened send no events (nf_conntrack_events 2): the
    # probe dumps again while it counts any such
    probe = Probe(topo, "--resync-ms", "300")
    held = topo.connect(PORT, 20)      # NEW, UPDATE: ESTABLISHED
    closed = topo.connect(PORT, 12)    # ... and TIME_WAIT after close
    closed.close()
    topo.udp(9999, 3)
    time.sleep(0.5)
    # DESTROY: the first dump's entries and the later TIME_WAIT ones
    topo.exec(topo.router, "conntrack", "-D", "-p", "tcp", "--state", "TIME_WAIT")
    held.close()                       # 20 more TIME_WAIT
    key = ("tcp", nat.ROUTER_OUT, nat.SERVER_ADDR, PORT)
    settled = settle(topo, key, 20)
    time.sleep(0.4)  # past --resync-ms: the dump-only entries are gone
    states, origins, stats = probe.stop()
    assert_is_conntrack(topo, states, origins)
    assert states[key] == settled and "established" not in settled
    assert states[("udp", nat.ROUTER_OUT, nat.SERVER_ADDR, 9999)] == {"udp": 3}
    assert origins[key] == {nat.CLIENT_ADDR: 20}
    assert stats["dumped"] >= 5 and stats["events"] > 0 and stats["enobufs"] == 0
    # (how many entries are still known from a dump only depends on when the last dump
    # ran: under make vmtest's TCG guests, not within 0.4 s)
    assert stats["malformed"] == 0 and stats["entries"] == 23
    assert stats["dumps"] >= 2


def test_counts_after_overflow(topo):
    """a tiny receive buffer read slowly: events are lost, the probe dumps again"""
    topo.start_server(PORT)
    probe = Probe(topo, "--rcvbuf", "4096", "--lazy-ms", "300")
    held = topo.connect(PORT, 100)
    closed = topo.connect(PORT, 150)
    closed.close()
    key = ("tcp", nat.ROUTER_OUT, nat.SERVER_ADDR, PORT)
    settled = settle(topo, key, 250)
    states, origins, stats = probe.stop()
    assert stats["enobufs"] >= 1 and stats["dumps"] >= 2, stats
    assert_is_conntrack(topo, states, origins)
    assert states[key] == settled and settled["established"] == 100
    assert settled["time_wait"] >= 100
    held.close()


def test_only_source_nat(topo):
    """connections the router makes itself are tracked, not translated: not counted"""
    topo.start_server(PORT)
    probe = Probe(topo)
    topo.exec(topo.router, "python3", "-c",
              "import socket; [socket.create_connection(('%s', %d)).close() for _ in range(50)]"
              % (nat.SERVER_ADDR, PORT))
    topo.connect(PORT, 3).close()
    key = ("tcp", nat.ROUTER_OUT, nat.SERVER_ADDR, PORT)
    settled = settle(topo, key, 3)
    states, _origins, stats = probe.stop()
    assert states == {key: settled}
    out = topo.exec(topo.router, "conntrack", "-L", "-p", "tcp").stdout
    assert len(out.splitlines()) == 53  # the router's own 50 are there, uncounted
    # the kernel filter kept the router's own connections' events (5 or more each) from
    # the socket: what came is the 3 translated ones' (at most 8 each)
    assert stats["events"] <= 3 * 8, stats


def test_counts_without_events(topo):
    """nf_conntrack_events 0: no events at all; the probe's periodic dumps still count right"""
    topo.exec(topo.router, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_events=0")
    topo.start_server(PORT)
    probe = Probe(topo, "--resync-ms", "200")
    held = topo.connect(PORT, 10)
    topo.connect(PORT, 7).close()
    key = ("tcp", nat.ROUTER_OUT, nat.SERVER_ADDR, PORT)
    settled = settle(topo, key, 17)
    time.sleep(0.5)  # past --resync-ms
    states, origins, stats = probe.stop()
    assert stats["events"] == 0 and stats["events_sysctl"] == 0 and stats["dumps"] >= 2, stats
    assert states[key] == settled and settled["established"] == 10
    assert_is_conntrack(topo, states, origins)
    held.close()


@pytest.mark.parametrize("topo", [(40000, 40001)], indirect=True, ids=["two-ports"])
def test_failed_nat_counted_from_outside(topo):
    """two ports, a third connection: its SYNs fail NAT and are dropped at confirm
    (insert_failed, drop); the probe, back in its own namespace, reads the router's"""
    topo.start_server(PORT)
    probe = Probe(topo, "--setns-back", outside=True)
    held = topo.connect(PORT, 2)
    out = topo.exec(topo.client, "python3", "-c",
                    "import socket\ns = socket.socket(); s.settimeout(2.5)\n"
                    f"try: s.connect(('{nat.SERVER_ADDR}', {PORT}))\n"
                    "except OSError: print('failed')").stdout
    assert "failed" in out
    states, origins, stats = probe.stop()
    key = ("tcp", nat.ROUTER_OUT, nat.SERVER_ADDR, PORT)
    assert states == {key: {"established": 2}}
    assert_is_conntrack(topo, states, origins)
    sums = {"insert_failed": 0, "drop": 0}
    for line in topo.exec(topo.router, "conntrack", "-S").stdout.splitlines():
        for kv in line.split():
            name, _, value = kv.partition("=")
            if name in sums:
                sums[name] += int(value)
    assert sums["insert_failed"] >= 1 and sums["drop"] >= 1, sums
    assert (stats["insert_failed"], stats["drop"]) == (sums["insert_failed"], sums["drop"])
    held.close()


def test_expired_time_wait_stops_counting(topo):
    """a TIME_WAIT entry past its timeout holds no port, though the kernel's GC may send
    its DESTROY much later: the probe stops counting it by the timeout its events gave"""
    topo.exec(topo.router, "sysctl", "-q", "-w",
              "net.netfilter.nf_conntrack_tcp_timeout_time_wait=2")
    topo.start_server(PORT)
    probe = Probe(topo)
    held = topo.connect(PORT, 4)
    topo.connect(PORT, 10).close()
    time.sleep(4.5)  # no conntrack -L meanwhile: its dump would reap the expired ones
    table = int(topo.exec(topo.router, "conntrack", "-C").stdout)
    states, origins, stats = probe.stop()
    key = ("tcp", nat.ROUTER_OUT, nat.SERVER_ADDR, PORT)
    assert states == {key: {"established": 4}}
    assert_is_conntrack(topo, states, origins)
    # the kernel's table still held them (unless its GC came first)
    assert stats["expired"] >= table - 4, (stats, table)
    held.close()
