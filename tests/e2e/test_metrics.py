# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Prometheus metrics from the real agent: a live scrape during traffic in a private namespace
passes promtool, its figures equal ephport query's and ss's, --metrics-top bounds the per-tuple
series, and bad --metrics-* values fail cleanly."""
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import EPHPORT, PIN_DIR, eventually, query_tuples, run

PORT = 8080
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def get(url, method="GET"):
    """(status, content type, body) of one request."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def parse(text):
    """{(name, frozenset(labels)): value} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def tuple_samples(samples, name, **labels):
    """The samples of one family whose labels include these."""
    want = {(k, str(v)) for k, v in labels.items()}
    return {l: v for (n, l), v in samples.items() if n == name and want <= l}


def one(samples, name, **labels):
    found = tuple_samples(samples, name, **labels)
    assert len(found) == 1, f"{name} {labels}: {found}"
    return next(iter(found.values()))


def scrape(agent):
    """/metrics; 503 until the first check is done, then 200"""
    status, ctype, body = get(agent.start_event["settings"]["metrics"]["url"])
    assert status == 200, (status, body)
    assert ctype.startswith("text/plain; version=0.0.4")
    return body


def promtool_check(body):
    r = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                       capture_output=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_live_scrape_passes_promtool_and_equals_query(make_netns, make_peer, make_agent):
    ns = make_netns((40000, 40099))  # 100 ports
    peer = make_peer(ns)
    peer.cmd(f"listen 127.0.0.1 {PORT}")
    agent = make_agent("--interval", "60", "--metrics-addr", "127.0.0.1:0")
    m = agent.start_event["settings"]["metrics"]
    assert m["addr"] == "127.0.0.1:0" and m["top"] == 100
    assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*/metrics", m["url"])
    assert peer.connect("127.0.0.1", PORT, 60) == (60, 0, 0)
    assert peer.connect("127.0.0.1", PORT + 1, 1) == (0, 0, 1)  # refused: a connect all the same

    key = dict(netns=ns.inode, saddr="127.0.0.1", daddr="127.0.0.1", dport=PORT)

    def settled():
        s = parse(scrape(agent))
        assert one(s, "ephport_tuple_in_use_sockets", **key) == 60
        return s

    s = eventually(settled)
    promtool_check(scrape(agent))
    q = query_tuples(ns)[("127.0.0.1", "127.0.0.1", PORT)]
    ss = ns.ss_tuples([PORT])[("127.0.0.1", "127.0.0.1", PORT)]
    assert one(s, "ephport_tuple_sockets", state="established", **key) == q["established"] == ss["established"] == 60
    assert one(s, "ephport_tuple_sockets", state="time_wait", **key) == 0
    assert one(s, "ephport_tuple_capacity_ports", **key) == q["capacity"] == 100
    assert one(s, "ephport_tuple_usage_ports", **key) == 60
    assert one(s, "ephport_tuple_utilization_ratio", **key) == 0.6
    assert one(s, "ephport_tuple_pressure_level", **key) == 0
    assert one(s, "ephport_tuple_connects_total", **key) == q["connects"] == 60
    assert one(s, "ephport_tuple_failed_connects_total", **key) == 0
    assert one(s, "ephport_netns_port_range_first", netns=ns.inode) == 40000
    assert one(s, "ephport_netns_port_range_last", netns=ns.inode) == 40099
    assert one(s, "ephport_netns_in_use_sockets", netns=ns.inode) == 60
    assert one(s, "ephport_netns_connects_total", netns=ns.inode) == 61  # the refused one too
    assert one(s, "ephport_ready") == 1
    assert one(s, "ephport_build_info", version=agent.start_event["version"]) == 1
    assert one(s, "ephport_lost_events_total", reason="tuples_full") == 0
    assert {l for l in tuple_samples(s, "ephport_map_memory_bytes")} >= {
        frozenset({("map", "tuples")}), frozenset({("map", "local_tw")})}
    assert one(s, "process_resident_memory_bytes") > 0
    # checks were done, each taking some time: their total, and their count
    assert one(s, "ephport_pressure_checks_total") >= 1
    assert one(s, "ephport_check_seconds_total") > 0
    # no guard: no denial families
    assert not tuple_samples(s, "ephport_denials_total")

    # a tuple at the critical line shows its level
    assert peer.connect("127.0.0.1", PORT, 36) == (36, 0, 0)

    def critical():
        s = parse(scrape(agent))
        assert one(s, "ephport_tuple_pressure_level", **key) == 2
        assert one(s, "ephport_tuples_at_level", level="critical") == 1
        assert one(s, "ephport_max_utilization_ratio") == 0.96

    eventually(critical)


def test_top_n_bounds_the_tuple_series(make_netns, make_peer, make_agent):
    ns = make_netns((40000, 40099))
    peer = make_peer(ns)
    for i in range(3):
        peer.cmd(f"listen 127.0.0.1 {PORT + i}")
    agent = make_agent("--interval", "60", "--metrics-addr", "127.0.0.1:0", "--metrics-top", "2")
    for i, n in enumerate((10, 30, 20)):
        assert peer.connect("127.0.0.1", PORT + i, n) == (n, 0, 0)

    def settled():
        s = parse(scrape(agent))
        assert one(s, "ephport_netns_in_use_sockets", netns=ns.inode) == 60
        return s

    s = eventually(settled)
    exported = tuple_samples(s, "ephport_tuple_in_use_sockets", netns=ns.inode)
    # the two nearest exhaustion, and every family shows the same two
    assert sorted(exported.values()) == [20, 30]
    assert {dict(l)["dport"] for l in exported} == {str(PORT + 1), str(PORT + 2)}
    assert len(tuple_samples(s, "ephport_tuple_utilization_ratio")) == 2
    assert len(tuple_samples(s, "ephport_tuple_sockets")) == 2 * 9
    assert one(s, "ephport_tuples_exported") == 2
    assert one(s, "ephport_tuples") >= 3
    assert one(s, "ephport_netns_tuples", netns=ns.inode) == 3
    assert one(s, "ephport_in_use_sockets") >= 60


@pytest.mark.any_kernel
def test_probes_and_methods(make_agent):
    agent = make_agent("--interval", "60", "--metrics-addr", "127.0.0.1:0")
    base = agent.start_event["settings"]["metrics"]["url"].removesuffix("/metrics")

    def ready():
        assert get(base + "/readyz")[:3:2] == (200, "ready\n")

    eventually(ready)
    assert get(base + "/healthz")[0] == 200
    status, _, body = get(base + "/metrics", method="POST")
    assert status == 405
    assert get(base + "/nope")[0] == 404
    assert get(base + "/metrics", method="HEAD")[0] == 200


@pytest.mark.any_kernel
@pytest.mark.parametrize("value", ["nope", ":", "127.0.0.1:99999", "127.0.0.1:", "::1:80",
                                   "[::1:80", "[]:80", "no.such.host.invalid:80"])
def test_bad_metrics_addr_exits_2_with_one_line(value):
    r = run(EPHPORT, "agent", "--metrics-addr", value, check=False, timeout=20)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == \
        f"ephport agent: bad value '{value}' for --metrics-addr: a numeric IPv4 address, " \
        "an IPv6 one in brackets, or none (:PORT)"
    assert not os.path.exists(PIN_DIR)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.any_kernel
@pytest.mark.parametrize("host", ["1", "127.1", "0x7f.0.0.1", "localhost", "[localhost]",
                                  "ip6-localhost"])
def test_metrics_addr_takes_numbers_not_names(host):
    """1:PORT would bind 0.0.0.1, and a name would be looked up: both are refused, with
    one line saying what is wanted, before anything is loaded."""
    value = f"{host}:{free_port()}"
    r = run(EPHPORT, "agent", "--metrics-addr", value, check=False, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert lines[0] == (f"ephport agent: bad value '{value}' for --metrics-addr: a numeric "
                        "IPv4 address, an IPv6 one in brackets, or none (:PORT)")
    assert len(lines) == 2 and lines[1].startswith("usage: ephport agent")
    assert not os.path.exists(PIN_DIR)


@pytest.mark.any_kernel
@pytest.mark.parametrize("value", ["-1", "1001", "x"])
def test_bad_metrics_top_exits_2(value):
    # a value taken starts an agent: the timeout ends it, and the test fails
    r = run(EPHPORT, "agent", "--metrics-top", value, check=False, timeout=20)
    assert r.returncode == 2 and "--metrics-top" in r.stderr


@pytest.mark.any_kernel
def test_port_in_use_fails_cleanly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run(EPHPORT, "agent", "--metrics-addr", f"127.0.0.1:{port}", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == \
        f"ephport: cannot serve metrics on 127.0.0.1:{port}: Address already in use"
    assert r.stdout == ""
    assert not os.path.exists(PIN_DIR)
