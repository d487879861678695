# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Source NAT test topology and its ground truth: a client namespace, a router
namespace that forwards and masquerades (nftables), a server namespace, joined by
veth pairs with 198.18.0.0/15 addresses. Ground truth is `conntrack -L` in the
router. Everything made here goes when delete() runs (the veths and the nft table
go with their namespaces)."""
import collections
import itertools
import os
import subprocess
import sys
import time

_serial = itertools.count()

CLIENT_ADDR, ROUTER_IN = "198.18.0.2", "198.18.0.1"
ROUTER_OUT, SERVER_ADDR = "198.18.1.1", "198.18.1.2"

# conntrack's tcp state names -> nat_ct's
CT_STATES = {"SYN_SENT": "syn_sent", "SYN_SENT2": "syn_sent", "ESTABLISHED": "established",
             "TIME_WAIT": "time_wait", "CLOSE": "close"}

# a server that accepts, and closes each connection once its client has
SERVER = r"""
import selectors, socket, sys
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind((sys.argv[1], int(sys.argv[2]))); lst.listen(4096); lst.setblocking(False)
sel = selectors.DefaultSelector(); sel.register(lst, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        if key.fileobj is lst:
            try:
                c, _ = lst.accept()
            except BlockingIOError:
                continue
            sel.register(c, selectors.EVENT_READ)
        else:
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj); key.fileobj.close()
"""

# a client: N connections; "ready" once all are up; closes them all when a line comes
CLIENT = r"""
import socket, sys
conns = [socket.create_connection((sys.argv[1], int(sys.argv[2]))) for _ in range(int(sys.argv[3]))]
print("ready", flush=True)
sys.stdin.readline()
for c in conns:
    c.close()
print("closed", flush=True)
sys.stdin.readline()
"""

# n connections tried, each with a timeout: "made M F"; then as CLIENT
TRY = r"""
import socket, sys
conns, failed = [], 0
for _ in range(int(sys.argv[3])):
    try:
        conns.append(socket.create_connection((sys.argv[1], int(sys.argv[2])),
                                              timeout=float(sys.argv[4])))
    except OSError:
        failed += 1
print("made", len(conns), failed, flush=True)
sys.stdin.readline()
for c in conns:
    c.close()
print("closed", flush=True)
sys.stdin.readline()
"""

UDP = r"""
import socket, sys
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(int(sys.argv[3]))]
for s in socks:
    s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
"""


def run(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


class Topology:
    """client -> router (masquerade, optionally `to :LOW-HIGH`) -> server."""

    def __init__(self, nat_range=None):
        tag = f"{os.getpid() % 100000}{next(_serial)}"
        self.client, self.router, self.server = (f"epn{r}{tag}" for r in "crs")
        self.procs = []
        self.extra = []
        try:
            self._build(tag, nat_range)
        except Exception:
            self.delete()
            raise

    def _build(self, tag, nat_range):
        for ns in (self.client, self.router, self.server):
            run("ip", "netns", "add", ns)
            self.exec(ns, "ip", "link", "set", "lo", "up")
        # veth names are per namespace once moved: made in the router, one end moved out
        for peer, local, remote, laddr, raddr in (
                (self.client, "r0", "c0", ROUTER_IN, CLIENT_ADDR),
                (self.server, "r1", "s0", ROUTER_OUT, SERVER_ADDR)):
            self.exec(self.router, "ip", "link", "add", local, "type", "veth",
                      "peer", "name", remote, "netns", peer)
            self.exec(self.router, "ip", "addr", "add", f"{laddr}/24", "dev", local)
            self.exec(self.router, "ip", "link", "set", local, "up")
            self.exec(peer, "ip", "addr", "add", f"{raddr}/24", "dev", remote)
            self.exec(peer, "ip", "link", "set", remote, "up")
        self.exec(self.client, "ip", "route", "add", "default", "via", ROUTER_IN)
        self.exec(self.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        # a port range needs a transport protocol match
        rule = (f"meta l4proto {{ tcp, udp }} masquerade to :{nat_range[0]}-{nat_range[1]}"
                if nat_range else "masquerade")
        self.nft(self.router, "add table ip ephport_nat\n"
                 "add chain ip ephport_nat post { type nat hook postrouting priority srcnat; }\n"
                 f"add rule ip ephport_nat post oifname \"r1\" {rule}\n")

    @staticmethod
    def exec(ns, *args, check=True):
        return run("ip", "netns", "exec", ns, *args, check=check)

    @staticmethod
    def nft(ns, script):
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True,
                       check=True, capture_output=True)

    def spawn(self, ns, *args, stdin=subprocess.PIPE):
        p = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdin=stdin,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def start_server(self, port):
        p = self.spawn(self.server, sys.executable, "-c", SERVER, SERVER_ADDR, str(port))
        expect(p, "ready")
        return p

    def connect(self, port, n):
        """n connections from the client, up when this returns; Clients.close() ends them."""
        p = self.spawn(self.client, sys.executable, "-c", CLIENT, SERVER_ADDR, str(port), str(n))
        expect(p, "ready", timeout=60)
        return Clients(p)

    def udp(self, port, n):
        """n udp flows from the client (one datagram each; nothing answers)"""
        self.exec(self.client, sys.executable, "-c", UDP, SERVER_ADDR, str(port), str(n))

    def conntrack(self):
        """The router's source-NATed entries: {(proto, saddr, daddr, dport): {state: n}}
        (saddr translated) and {same key: {origin: n}}, as conntrack -L lists them."""
        states = collections.defaultdict(collections.Counter)
        origins = collections.defaultdict(collections.Counter)
        for line in self.exec(self.router, "conntrack", "-L").stdout.splitlines():
            f = line.split()
            if not f or f[0] not in ("tcp", "udp"):
                continue
            kv = [x.split("=", 1) for x in f if "=" in x]
            orig, reply = dict(kv[:4]), dict(kv[4:8])
            if orig["src"] == reply["dst"] and orig["sport"] == reply["dport"]:
                continue  # not translated
            key = (f[0], reply["dst"], reply["src"], int(reply["sport"]))
            state = CT_STATES.get(f[3], "other") if f[0] == "tcp" else "udp"
            states[key][state] += 1
            origins[key][orig["src"]] += 1
        return states, origins

    def add_client(self):
        """A second client namespace behind the router (198.18.2.2); its name."""
        ns = self.client + "b"
        run("ip", "netns", "add", ns)
        self.extra.append(ns)
        self.exec(ns, "ip", "link", "set", "lo", "up")
        self.exec(self.router, "ip", "link", "add", "r2", "type", "veth", "peer", "name", "c0",
                  "netns", ns)
        self.exec(self.router, "ip", "addr", "add", "198.18.2.1/24", "dev", "r2")
        self.exec(self.router, "ip", "link", "set", "r2", "up")
        self.exec(ns, "ip", "addr", "add", "198.18.2.2/24", "dev", "c0")
        self.exec(ns, "ip", "link", "set", "c0", "up")
        self.exec(ns, "ip", "route", "add", "default", "via", "198.18.2.1")
        return ns

    def try_connect(self, ns, port, n, timeout):
        """n more connections from ns, each given timeout s: (made, failed); the made ones
        stay open until the process ends (the returned Clients)"""
        p = self.spawn(ns, sys.executable, "-c", TRY, SERVER_ADDR, str(port), str(n),
                       str(timeout))
        made, failed = map(int, expect(p, "made", timeout=n * timeout + 30).split()[1:])
        return (made, failed), Clients(p)

    def delete(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for ns in (self.client, self.router, self.server, *self.extra):
            run("ip", "netns", "del", ns, check=False)


class Clients:
    def __init__(self, proc):
        self.proc = proc

    def close(self):
        """closes every connection (the client stays until end())"""
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        expect(self.proc, "closed")

    def end(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


def expect(p, word, timeout=20):
    """waits for a line starting with word on p's stdout"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"{p.args[3:5]} ended: {p.stderr.read()}")
        if line.startswith(word):
            return line
    raise TimeoutError(f"no {word!r} from {p.args}")
