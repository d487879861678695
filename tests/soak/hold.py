# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Holds N established connections in the network namespace it runs in: listeners on
127.0.0.1:PORT..PORT+D-1, N client sockets spread over them, each accepted. Prints
"ready N" once all are established, then keeps them until its standard input closes, and
closes them with a RST (no TIME_WAIT left behind)."""
import resource
import socket
import struct
import sys
import threading


def main():
    n, port, dests = (int(a) for a in sys.argv[1:4])
    want = 2 * n + 64
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    listeners, accepted, clients = [], [], []
    for p in range(port, port + dests):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", p))
        ls.listen(4096)
        listeners.append(ls)

    def accept_all(ls, count):
        for _ in range(count):
            accepted.append(ls.accept()[0])

    share = [n // dests + (i < n % dests) for i in range(dests)]
    threads = [threading.Thread(target=accept_all, args=(ls, k), daemon=True)
               for ls, k in zip(listeners, share)]
    for t in threads:
        t.start()
    for i, k in enumerate(share):
        for _ in range(k):
            s = socket.socket()
            s.connect(("127.0.0.1", port + i))
            clients.append(s)
    for t in threads:
        t.join()
    print(f"ready {len(clients)}", flush=True)
    sys.stdin.read()
    linger = struct.pack("ii", 1, 0)
    for s in clients + accepted:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.close()


if __name__ == "__main__":
    main()
