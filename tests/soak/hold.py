# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Holds N established connections in the network namespace it runs in: listeners on
127.0.0.1:PORT..PORT+D-1, N client sockets spread over them, each accepted. Prints
"ready N" once all are established, then keeps them until its standard input closes, and
closes them with a RST (no TIME_WAIT left behind). The client ends live in a child
process, so that each process needs N descriptors, not 2N (a container's hard limit may
be 20,000 and not raisable without CAP_SYS_RESOURCE)."""
import os
import resource
import socket
import struct
import sys
import threading

LINGER_0 = struct.pack("ii", 1, 0)


def fit_descriptors(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if want > hard != resource.RLIM_INFINITY:
        sys.exit(f"hold: {n} connections need {want} descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


def close_all(socks):
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        s.close()


def main():
    n, port, dests = (int(a) for a in sys.argv[1:4])
    fit_descriptors(n)
    share = [n // dests + (i < n % dests) for i in range(dests)]
    listeners = []
    for p in range(port, port + dests):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", p))
        ls.listen(4096)
        listeners.append(ls)
    child = os.fork()
    if child == 0:
        for ls in listeners:
            ls.close()
        clients = []
        for i, k in enumerate(share):
            for _ in range(k):
                s = socket.socket()
                s.connect(("127.0.0.1", port + i))
                clients.append(s)
        sys.stdin.read()
        close_all(clients)
        os._exit(0)
    accepted = []

    def accept_all(ls, count):
        for _ in range(count):
            accepted.append(ls.accept()[0])

    threads = [threading.Thread(target=accept_all, args=(ls, k), daemon=True)
               for ls, k in zip(listeners, share)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"ready {len(accepted)}", flush=True)
    sys.stdin.read()
    close_all(accepted)
    os.waitpid(child, 0)


if __name__ == "__main__":
    main()
