# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The benchmark harness, run short: it works, prints every figure and cleans up.
Its timings decide nothing here; the counts it checks against ss do."""
import json
import math
import os
import subprocess

import pytest

from conftest import ROOT, eventually, run

BENCH = os.path.join(ROOT, "bench", "run")
LOADGEN = os.path.join(ROOT, "build", "loadgen")


def _netns():
    return set(run("ip", "netns", "list").stdout.split())


def _bpf_stats():
    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        return f.read().strip()


# make bench runs on the machine it measures; in a TCG guest it took two minutes a kernel
@pytest.mark.host_only
def test_smoke_run_prints_every_figure(tmp_path):
    before, stats_before = _netns(), _bpf_stats()
    out = tmp_path / "bench.json"
    r = subprocess.run([BENCH, "--smoke", "--json", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    for title in ("1 connections/s, 2 client threads, RST",
                  "1 connections/s, 2 client threads, client FIN (TIME_WAIT)",
                  "2 BPF ns per run (kernel.bpf_stats_enabled=1), RST churn",
                  "2 BPF ns per run, client FIN churn (TIME_WAIT)",
                  "TIME_WAIT sockets", "4 agent user space at maximum churn",
                  "5 agent start-up", "6 map memory", "7 the agent with"):
        assert title in text
    for row in ("no tracing", "ephport agent --guard", "tcpstates (libbpf-tools)",
                "tuples_set_state", "tw_timer_start", "tw_timer_cancel", "connect_exit",
                "guard_connect4 (--guard)", "floor: one-counter program",
                "all programs, per state event", "ephport query --json",
                "ss -tanH state time-wait", "CPU, % of one core", "peak RSS (VmHWM)",
                "walk of all namespaces (bootstrap)", "tuples map", "all ephport maps"):
        assert row in text, row
    assert "bench/run --only" in text

    res = json.loads(out.read_text())["results"]
    for mode in ("rst", "fin"):
        for config, rate in res["rate"][mode]["median"].items():
            assert rate > 0, (mode, config)
    for prog, v in res["cost"].items():
        n = v if isinstance(v, float) else v["ns_per_run"]
        assert math.isfinite(n) and n > 0, prog  # every program ran and was timed
    # the query saw exactly the TIME_WAIT sockets ss lists
    assert res["query"]["timewait"] >= 1900
    assert res["query"]["counted"] == res["query"]["timewait"]
    assert res["startup"]["bootstrap_ms"] > 0
    assert res["maps"]["tuples"] >= 500
    if res["maps"]["measured"]:  # Linux 6.4+: the kernel reports what a map uses
        assert res["maps"]["bytes"]["tuples"] > res["maps"]["idle_bytes"]["tuples"]
    assert res["agent"]["peak_rss_kib"] > 0
    # the agent saw every tuple the scale figure made, and each reading was timed
    scale = res["scale"]["now"]
    assert scale["tuples"] >= 500, scale
    for key in ("query_json", "query_json_dst", "query_json_netns", "query_table",
                "query_table_dst", "metrics", "rss_kib"):
        assert scale[key] > 0, key

    # nothing left behind: namespaces, programs, the bpf_stats setting
    assert _netns() == before
    assert _bpf_stats() == stats_before
    progs = json.loads(run("bpftool", "-j", "prog", "show").stdout)
    assert not {p.get("name") for p in progs} & {"tuples_set_state", "floor_set_state"}


def test_bad_flags_get_one_line_and_exit_2():
    for args in (["--only", "nope"], ["--rounds", "0"], ["--seconds", "x"]):
        r = subprocess.run([BENCH, *args], capture_output=True, text=True)
        assert r.returncode == 2, args
        assert r.stderr.strip().splitlines()[-1].startswith("bench/run: error:"), r.stderr


def test_loadgen_counts_and_refuses_bad_flags(make_netns):
    ns = make_netns(port_range=(40000, 40099))
    ns.exec("sysctl", "-qw", "net.ipv4.tcp_tw_reuse=0")
    # 100 ports to one destination: 100 connections fit, the rest fail. A connection the
    # server resets as the client closes leaves no TIME_WAIT behind, and its port is
    # taken again. The first run ends once 100 succeed, however slow the machine; the
    # second finds the range full, or nearly, and fails for the rest of its half second
    def loadgen(count, seconds):
        r = ns.exec(LOADGEN, "--json", "-c", "fin", "-n", "1", "-t", "1", "--count",
                    str(count), "-d", str(seconds), check=False)
        return json.loads(r.stdout)

    first = loadgen(100, 60)
    assert first["connections"] == 100 and first["failures"] == 0, first
    second = loadgen(50, 0.5)
    assert second["connections"] < 50, second
    assert second["eaddrnotavail"] > 0 and second["eaddrnotavail"] == second["failures"]

    def time_wait_fills_the_range():
        tw = len(ns.exec("ss", "-tanH", "state", "time-wait").stdout.splitlines())
        # each reset one freed a port for one of the second run's connections
        assert 100 - second["connections"] <= tw <= 100, (tw, second)
    eventually(time_wait_fills_the_range)
    for args in (["-t", "0"], ["-c", "maybe"], ["--bogus"], ["-6", "--addresses", "2"]):
        r = subprocess.run([LOADGEN, *args], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith("loadgen: "), (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
