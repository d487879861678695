# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""nat_rules.c against real rulesets: build/natrules enters a namespace made here with
`ip netns add`, detects source NAT and reads the ranges of its nft and iptables rules."""
import json
import os
import shutil

import pytest

from conftest import ROOT, run

NATRULES = os.path.join(ROOT, "build", "natrules")


@pytest.fixture
def nat_ns():
    if not os.access(NATRULES, os.X_OK):
        pytest.skip(f"{NATRULES} is not built (make build/natrules)")
    if not shutil.which("nft"):
        pytest.skip("nft (nftables) is not installed")
    made = []

    def make():
        name = f"ephport-natrules-{os.getpid()}-{len(made)}"
        run("ip", "netns", "add", name)
        made.append(name)
        return name

    yield make
    for name in made:
        run("ip", "netns", "del", name, check=False)


def nft(ns, script):
    run("ip", "netns", "exec", ns, "nft", "-f", "-", input=script)


def natrules(ns, *args):
    out = run(NATRULES, f"/run/netns/{ns}", *args, timeout=60).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    detect = [x["detect"] for x in lines if "detect" in x]
    assert len(detect) == 1, out
    rules = [x["rule"] for x in lines if "rule" in x]
    ranges = [x["range"] for x in lines if "range" in x]
    return detect[0], rules, ranges


def test_no_nat(nat_ns):
    ns = nat_ns()
    # a nat chain for destination NAT only is not source NAT
    nft(ns, """table ip t {
        chain pre {
            type nat hook prerouting priority dstnat;
            tcp dport 80 dnat to 198.18.0.9
        }
        chain f {
            type filter hook postrouting priority 0;
        }
    }""")
    detect, rules, ranges = natrules(ns, "tcp", "198.18.0.1")
    gen = detect.pop("gen")
    assert detect == {"nft": False, "legacy": False}
    assert rules == []
    assert ranges[0]["source"] == "default"
    assert (ranges[0]["low"], ranges[0]["high"], ranges[0]["size"]) == (1024, 65535, 64512)
    # a change to the ruleset moves its generation: the agent reads rules again only then
    detect, _, _ = natrules(ns)
    assert detect["gen"] == gen
    nft(ns, "add table ip another")
    detect, _, _ = natrules(ns)
    assert detect["gen"] != gen


def test_nft_masquerade_and_snat(nat_ns):
    ns = nat_ns()
    nft(ns, """table inet r {
        chain post {
            type nat hook postrouting priority srcnat;
            oifname "a" meta nfproto ipv4 meta l4proto { tcp, udp } masquerade to :40000-40099
            oifname "b" meta l4proto tcp snat ip to 198.18.0.1-198.18.0.2:5000-5999 random
            oifname "c" meta nfproto ipv6 masquerade
        }
    }""")
    detect, rules, ranges = natrules(ns, "tcp", "198.18.0.2", "udp", "198.18.77.1",
                                     "tcp", "2001:db8::7")
    assert detect["nft"] is True
    assert [(r["kind"], r["ports"]) for r in rules] == [
        ("masquerade", [40000, 40099]), ("snat", [5000, 5999]), ("masquerade", None)]
    assert rules[1]["addr"] == ["198.18.0.1", "198.18.0.2"] and rules[1]["random"]
    assert (rules[1]["tcp"], rules[1]["udp"]) == (True, False)
    assert rules[2]["family"] == "ip6"
    by_snat, by_masq, v6 = ranges
    assert (by_snat["low"], by_snat["high"], by_snat["source"]) == (5000, 5999, "rule")
    assert not by_snat["ambiguous"]
    assert (by_masq["low"], by_masq["high"], by_masq["size"]) == (40000, 40099, 100)
    # IPv6: masquerade without ports, the kernel's 1024-65535
    assert (v6["low"], v6["high"], v6["source"]) == (1024, 65535, "default")
    assert not v6["ambiguous"]


def test_nft_override(nat_ns):
    ns = nat_ns()
    nft(ns, "table ip r { chain p { type nat hook postrouting priority 100; masquerade; }; }")
    _, _, ranges = natrules(ns, "--nat-range", "20000-20499", "tcp", "198.18.0.1")
    assert (ranges[0]["low"], ranges[0]["high"], ranges[0]["source"]) == (20000, 20499,
                                                                           "override")


def test_iptables_nft(nat_ns):
    if not shutil.which("iptables-nft"):
        pytest.skip("iptables-nft is not installed")
    ns = nat_ns()
    ipt = ("ip", "netns", "exec", ns, "iptables-nft", "-t", "nat", "-A", "POSTROUTING")
    run(*ipt, "-o", "a", "-p", "tcp", "-j", "MASQUERADE", "--to-ports", "30000-30010")
    run(*ipt, "-o", "b", "-p", "udp", "-j", "SNAT", "--to-source", "198.18.0.5:2000-2100")
    detect, rules, ranges = natrules(ns, "tcp", "198.18.3.3", "udp", "198.18.0.5")
    assert detect["nft"] is True
    assert [(r["kind"], r["ports"], r["tcp"], r["udp"]) for r in rules] == [
        ("masquerade", [30000, 30010], True, False), ("snat", [2000, 2100], False, True)]
    assert (ranges[0]["low"], ranges[0]["high"]) == (30000, 30010)
    assert (ranges[1]["low"], ranges[1]["high"]) == (2000, 2100)


def test_iptables_legacy(nat_ns):
    if not shutil.which("iptables-legacy"):
        pytest.skip("iptables-legacy is not installed")
    ns = nat_ns()
    r = run("ip", "netns", "exec", ns, "iptables-legacy", "-t", "nat", "-A", "POSTROUTING",
            "-j", "MASQUERADE", check=False)
    if r.returncode:
        pytest.skip(f"iptables-legacy cannot make a nat table here: {r.stderr.strip()}")
    detect, rules, _ = natrules(ns)
    # the legacy table is seen, its rules are not nftables'
    assert (detect["nft"], detect["legacy"]) == (False, True)
    assert rules == []
