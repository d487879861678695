# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The demo's act 3 (demo/run): source NAT runs out. A client namespace behind a router
namespace that masquerades to one address with 100 ports (nftables `masquerade to
:40000-40099`), a server behind it (tests/e2e/nat.py's topology). The client opens
connections at a steady pace and keeps them: the NAT tuple goes warning -> critical, then
the router finds no port, drops the SYNs (insert_failed) and the client's connects time
out, while no socket anywhere sees an error: ephport names the NAT tuple, the client's
namespace and what to do."""
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import nat  # noqa: E402

PORT = 8080
RATE = 10  # connections a second: 100 ports last 10 s
GIVE_UP = 40.0

# connects at RATE a second, each given 1 s, and keeps them; on SIGTERM: "made failed"
CLIENT = r"""
import signal, socket, sys, time
conns, failed, stop = [], 0, False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
t0, n = time.monotonic(), 0
while not stop:
    try:
        conns.append(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1))
    except OSError:
        failed += 1
    n += 1
    time.sleep(max(0, t0 + n / float(sys.argv[3]) - time.monotonic()))
print(len(conns), failed, flush=True)
"""


def act3(demo, say):
    say()
    say("act 3: a client behind a router that masquerades it to one address with 100 ports")
    say("  (nftables in the router namespace: masquerade to :40000-40099)")
    demo.topology = t = nat.Topology((40000, 40099))
    router = os.stat(f"/run/netns/{t.router}").st_ino
    demo.start_agent(os.path.join(demo.tmp, "events3.jsonl"))
    t.start_server(PORT)
    say(f"client: {RATE} new connections a second from {nat.CLIENT_ADDR}, each kept open, to"
        f" {nat.SERVER_ADDR}:{PORT} through the router")
    say()
    client = t.spawn(t.client, sys.executable, "-c", CLIENT, nat.SERVER_ADDR, str(PORT),
                     str(RATE), stdin=subprocess.DEVNULL)
    t0 = time.monotonic()
    seen, lines, done_at, next_table = set(), [], None, t0 + 4
    while time.monotonic() < t0 + GIVE_UP and (done_at is None or
                                               time.monotonic() < done_at):
        for e in demo.read_events():
            if e["event"] != "nat_pressure" or e["netns"] != router:
                continue
            lines.append(e)
            seen.add(e["level"])
            origin = e["origins"][0] if e["origins"] else None
            say(f"[{time.monotonic() - t0:5.1f}s] nat_pressure {e['level']}:"
                f" {e['protocol']} {e['saddr']} -> {e['daddr']}:{e['dport']}"
                f" {e['usage']}/{e['capacity']} ports"
                + (f", from {origin['saddr']} (netns {origin.get('netns', '?')})"
                   if origin else "")
                + (f", insert_failed +{e['insert_failed_rise']}"
                   if e.get("insert_failed_rise") else ""))
            if e["level"] == "exhausted" and done_at is None:
                done_at = time.monotonic() + 3
        if time.monotonic() >= next_table:
            table(router, say)
            next_table += 4
        time.sleep(0.1)
    table(router, say)
    client.send_signal(signal.SIGTERM)
    made, failed = (int(w) for w in client.communicate(timeout=15)[0].split())
    demo.stop_agent()
    say()
    say("summary of act 3")
    say(f"  the client made {made} connections and {failed} timed out: the router had no"
        " port left and dropped their SYNs; no socket got an error")
    hints = []
    for e in lines:
        for h in e.get("hints", []):
            if h["advice"] not in hints:
                hints.append(h["advice"])
    if hints:
        say("  what ephport suggests:")
        for h in hints:
            say(f"    - {h}")
    say("  more: docs/nat.md")
    missing = [lv for lv in ("warning", "critical", "exhausted") if lv not in seen]
    if missing or not failed:
        raise RuntimeError("act 3 did not go as it should: no " +
                           ", ".join(missing or ["failed connect"]))


def table(router, say):
    """the NAT table of ephport query, for the router"""
    r = subprocess.run([os.path.join(ROOT, "build", "ephport"), "query", "--netns",
                        str(router)], capture_output=True, text=True)
    out = r.stdout.split("\n\n")
    nat_part = [p for p in out if p.lstrip().startswith("NETNS      PROTO")]
    for line in (nat_part[0].strip().splitlines() if nat_part else []):
        say("  " + line)
