# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The metrics server against slow and many clients (issue 16): slow headers are cut at an
absolute deadline and cannot keep /healthz from answering, slow readers of a large text do not
grow the agent's memory, and one address gets a bounded share of the connections.

All traffic is over loopback, from addresses of 127.0.0.0/8 (each one its own client as the
server sees it). The limits are docs/metrics.md's."""
import http.client
import socket
import time

import pytest

from conftest import PYTHON, eventually

# the HTTP server is the agent's own code, the same on every kernel
pytestmark = pytest.mark.host_only

PER_ADDRESS = 8      # connections one client address holds at most
CONNECTIONS = 64     # connections in all
REQUEST_S = 5        # to send a whole request, from connecting or from the previous answer
ANSWER_S = 15        # to take the whole answer, from the end of the request
SCRAPES = 4          # /metrics answers under way at once
TICK_S = 0.25        # how often the server looks at its deadlines
SLACK_S = 1.5        # what a deadline may be late by: a tick, and this test's own pace

TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8
MIB = 1 << 20


def serve(make_agent, *args):
    """An agent serving metrics on a free port of 127.0.0.1, ready: (agent, (host, port))."""
    agent = make_agent("--interval", "60", "--metrics-addr", "127.0.0.1:0", *args)
    url = agent.start_event["settings"]["metrics"]["url"]
    host, port = url.removeprefix("http://").removesuffix("/metrics").rsplit(":", 1)
    addr = (host, int(port))
    eventually(lambda: request(addr, "/readyz")[0] == 200, timeout=15)
    return agent, addr


def request(addr, path, src="127.0.0.1", timeout=5):
    """(status, body) of one GET from source address src; (None, why) if none came in time."""
    c = http.client.HTTPConnection(*addr, timeout=timeout, source_address=(src, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except OSError as e:
        return None, repr(e)
    finally:
        c.close()


def probe_answers(addr, src, when):
    t0 = time.monotonic()
    status, body = request(addr, "/healthz", src)
    took = time.monotonic() - t0
    assert status == 200, (f"/healthz from {src} at {when:.1f} s: no answer within 5 s "
                           f"({body})" if status is None else f"{status} {body}")
    return took


def connect_from(src, addr, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(addr)
    s.setblocking(False)
    return s


def closed_by_server(s):
    """The server has closed (FIN: CLOSE_WAIT) or reset (CLOSE) the connection."""
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] in (TCP_CLOSE,
                                                                        TCP_CLOSE_WAIT)


def vm_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class Slow:
    """A client that sends a request a byte at a time and never finishes its header."""

    def __init__(self, src, addr):
        self.sock = connect_from(src, addr)
        self.opened = time.monotonic()
        self.closed = None
        self.sock.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")

    def trickle(self):
        """One more byte; notes when the server closed the connection."""
        if self.closed is None:
            try:
                self.sock.send(b"a")
            except OSError:
                pass
            if closed_by_server(self.sock):
                self.closed = time.monotonic()
        return self.closed is not None

    def life(self):
        return (self.closed or time.monotonic()) - self.opened


def test_slow_headers_leave_the_probes_answering(make_agent):
    """72 clients from 9 addresses (8 each: more than the server takes in all) hold
    connections open by sending a byte of header each quarter second, and open a new one
    for each the server closes. /healthz, asked every half second from an address of its
    own (as the kubelet's) and from one of theirs, answers every time."""
    _, addr = serve(make_agent)
    sources = [f"127.0.0.{10 + i}" for i in range(CONNECTIONS // PER_ADDRESS + 1)]
    clients = {src: [] for src in sources}
    done = []
    probes = []
    try:
        t0 = time.monotonic()
        for step in range(32):  # 8 s
            for src in sources:
                done += [c for c in clients[src] if c.trickle()]
                clients[src] = [c for c in clients[src] if c.closed is None]
                while len(clients[src]) < PER_ADDRESS:
                    clients[src].append(Slow(src, addr))
            if step % 2:
                src = "127.0.0.1" if step % 4 == 1 else sources[0]
                probes.append(probe_answers(addr, src, time.monotonic() - t0))
            time.sleep(TICK_S)
        # no new ones: those left must go by their deadline, however they trickle
        left = [c for src in sources for c in clients[src]]
        stop = time.monotonic() + REQUEST_S + SLACK_S + 1
        while time.monotonic() < stop and not all([c.trickle() for c in left]):
            time.sleep(TICK_S)
        done += left
        longest = max(c.life() for c in done)
        assert all(c.closed for c in done), \
            f"{sum(not c.closed for c in done)} slow clients still connected"
        assert longest <= REQUEST_S + SLACK_S, f"a slow client stayed {longest:.1f} s"
        assert len(probes) == 16
    finally:
        for src in sources:
            for c in clients[src]:
                c.sock.close()
    print(f"\n{len(done)} slow clients, the longest connected {longest:.2f} s; /healthz "
          f"answered {len(probes)} times, in {max(probes) * 1000:.0f} ms at most")


def test_a_slow_header_is_cut_at_its_deadline(make_agent):
    """Four clients, within every limit, send a header byte every quarter second: each
    byte is activity, and still the server cuts them REQUEST_S after they connected."""
    _, addr = serve(make_agent)
    clients = [Slow("127.0.0.40", addr) for _ in range(4)]
    try:
        stop = time.monotonic() + REQUEST_S + SLACK_S + 3
        while time.monotonic() < stop and not all([c.trickle() for c in clients]):
            time.sleep(TICK_S)
        lives = [c.life() for c in clients]
        assert all(c.closed for c in clients), \
            f"still connected after {max(lives):.1f} s, sending a byte each {TICK_S} s"
        assert all(REQUEST_S - 0.5 <= life <= REQUEST_S + SLACK_S for life in lives), lives
    finally:
        for c in clients:
            c.sock.close()


def many_tuples(ns, n):
    """n destination tuples with the longest labels: IPv6 addresses of 39 characters, a
    refused connect to each of n ports (a connect counts, and the tuple stays)."""
    src, dst = "fd00:1111:2222:3333:4444:5555:6666:7777", "fd00:1111:2222:3333:4444:5555:6666:8888"
    for a in (src, dst):
        ns.exec("ip", "-6", "addr", "add", f"{a}/128", "dev", "lo", "nodad")
    script = (f"import socket\nfor p in range(20000, {20000 + n}):\n"
              f"    s = socket.socket(socket.AF_INET6)\n    s.bind(('{src}', 0))\n"
              f"    s.connect_ex(('{dst}', p))\n    s.close()\n")
    ns.exec(PYTHON, "-c", script)


def scrape_size(addr):
    c = http.client.HTTPConnection(*addr, timeout=10)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    assert r.status == 200, r.status
    return body


def test_slow_readers_of_a_large_text_do_not_grow_memory(make_netns, make_agent):
    """40 clients from 5 addresses ask for a text of about 3 MiB (1000 tuples, the most
    --metrics-top allows, with the longest labels) and read it at 1 KiB a second. The
    agent's resident memory stays within what SCRAPES answers of one text and a second text
    take, and under half the DaemonSet's 128 MiB; /healthz answers all along; and each
    reader is cut ANSWER_S after its request, though every read let the server send more."""
    ns = make_netns((40000, 49999))
    agent, addr = serve(make_agent, "--metrics-top", "1000")
    many_tuples(ns, 1000)

    def exported():
        assert b"\nephport_tuples_exported 1000\n" in scrape_size(addr)

    eventually(exported, timeout=10)
    size = len(scrape_size(addr))
    assert size > 2.5 * MIB, size
    time.sleep(1)
    before = vm_rss(agent.proc.pid)
    sources = [f"127.0.0.{20 + i}" for i in range(5)]
    readers = []
    try:
        for src in sources:
            for _ in range(8):
                s = connect_from(src, addr, rcvbuf=4096)
                s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                readers.append([s, time.monotonic(), None])
        peak = before
        probes = []  # (source, status)
        t0 = time.monotonic()
        stop = t0 + ANSWER_S + SLACK_S + 3
        while time.monotonic() < stop and not all(r[2] for r in readers):
            for r in readers:
                if r[2] is None:
                    try:
                        r[0].recv(1024)
                    except (BlockingIOError, ConnectionError):
                        pass
                    if closed_by_server(r[0]):
                        r[2] = time.monotonic()
            peak = max(peak, vm_rss(agent.proc.pid))
            if time.monotonic() - t0 < 6:
                src = sources[0] if len(probes) % 2 else "127.0.0.1"
                probes.append((src, *request(addr, "/healthz", src)))
            time.sleep(1)
        grew = peak - before
        print(f"\ntext {size / MIB:.2f} MiB; VmRSS {before / MIB:.1f} MiB before, "
              f"{peak / MIB:.1f} MiB at most with {len(readers)} slow readers; /healthz: "
              f"{probes}")
        assert grew <= SCRAPES * size + 8 * MIB and peak < 64 * MIB, \
            f"VmRSS grew by {grew / MIB:.1f} MiB to {peak / MIB:.1f} MiB, text {size / MIB:.2f} MiB"
        assert len(probes) >= 4 and all(status == 200 for _, status, _ in probes), probes
        lives = [r[2] - r[1] for r in readers if r[2]]
        assert len(lives) == len(readers), \
            f"{len(readers) - len(lives)} readers still connected after {ANSWER_S + SLACK_S + 3} s"
        assert max(lives) <= ANSWER_S + SLACK_S, max(lives)
    finally:
        for r in readers:
            r[0].close()


def test_one_address_gets_a_bounded_share(make_agent):
    """Twelve idle connections from one address: the server keeps the newest eight and
    closes the four it had the longest; another address is served, and keeps eight of its
    own without taking any of the first one's."""
    _, addr = serve(make_agent)
    first, second = [], []
    try:
        for _ in range(12):
            first.append(connect_from("127.0.0.30", addr))
            time.sleep(0.05)

        def oldest_four_closed():
            assert [closed_by_server(s) for s in first] == [True] * 4 + [False] * 8

        eventually(oldest_four_closed, timeout=3)
        assert request(addr, "/healthz", "127.0.0.31")[0] == 200
        for _ in range(PER_ADDRESS):
            second.append(connect_from("127.0.0.31", addr))
        time.sleep(1)
        assert not any(closed_by_server(s) for s in second + first[4:])
    finally:
        for s in first + second:
            s.close()
