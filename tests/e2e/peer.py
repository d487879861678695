# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A TCP client and server in one process, driven line by line on stdin.

Run inside a test namespace (ip netns exec NS python3 peer.py). Every command
answers one line, "ok ..." or "err ...", so the test knows the sockets are in
place before it looks at them.

  listen ADDR PORT                 listener on ADDR:PORT (accepts in a thread)
  connect ADDR PORT N [SRC]        N connects (AF_INET6 for IPv6 and ::ffff: forms);
                                   answers "ok CONNECTED EADDRNOTAVAIL OTHER"
  connect-again ADDR PORT ADDR2 PORT2
                                   one socket: connect to ADDR:PORT, then (after it
                                   failed) to ADDR2:PORT2; answers "ok ERRNO1 ERRNO2"
  connect-bound ADDR PORT N        N connects, each after bind(port 0): the port is
                                   the socket's alone (no IP_BIND_ADDRESS_NO_PORT)
  accepted N                       wait until N connections were accepted in all
  shutdown-clients                 shutdown(SHUT_WR) on every client socket
  close-clients | close-servers    close every client / accepted socket
  reset-clients | reset-servers    close them with a RST (SO_LINGER 0): no TIME_WAIT
  churn-start ADDR PORT            a thread connects and closes (client first) in a loop,
                                   at most 20000 times
  churn-stop                       stop it; answers "ok CONNECTED FAILED"
  quit
"""
import errno
import os
import socket
import struct
import sys
import threading
import time

clients = []
accepted = []
lock = threading.Lock()


def accept_loop(ls):
    while True:
        try:
            conn, _ = ls.accept()
        except OSError:
            return
        with lock:
            accepted.append(conn)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def cmd_listen(addr, port):
    ls = socket.socket(family_of(addr), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(4096)
    threading.Thread(target=accept_loop, args=(ls,), daemon=True).start()
    return "ok"


def cmd_connect(addr, port, n, src=None, bind_port=False, blocking=True):
    """n connects kept open: (ok, EADDRNOTAVAIL, other errors). Non-blocking ones that are
    under way (EINPROGRESS) count as ok: the port is taken by then."""
    ok = noport = other = 0
    for _ in range(int(n)):
        s = socket.socket(family_of(addr), socket.SOCK_STREAM)
        s.setblocking(blocking)
        try:
            if bind_port:
                s.bind(("::" if ":" in addr else "0.0.0.0", 0))
            elif src:
                # the kernel still picks the port at connect() time
                s.setsockopt(socket.SOL_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
                s.bind((src, 0))
            s.connect((addr, int(port)))
            clients.append(s)
            ok += 1
        except BlockingIOError:
            clients.append(s)
            ok += 1
        except OSError as e:
            s.close()
            if e.errno == errno.EADDRNOTAVAIL:
                noport += 1
            else:
                other += 1
    return f"ok {ok} {noport} {other}"


def cmd_connect_par(addr, port, n, threads):
    """n non-blocking connects kept open, from several threads at once, each starting
    when all are ready: (ok, EADDRNOTAVAIL, other errors) summed."""
    results, ready = [], threading.Barrier(int(threads))

    def one(count):
        ready.wait()
        results.append(cmd_connect(addr, port, count, blocking=False).split()[1:])

    share = [int(n) // int(threads) + (i < int(n) % int(threads)) for i in range(int(threads))]
    workers = [threading.Thread(target=one, args=(c,)) for c in share]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return "ok " + " ".join(str(sum(int(r[i]) for r in results)) for i in range(3))


def cmd_hammer(addr, port, n):
    """n connects in a tight loop that are expected to fail: (EADDRNOTAVAIL seen, others)."""
    noport = other = 0
    fam = family_of(addr)
    dest = (addr, int(port))
    for _ in range(int(n)):
        s = socket.socket(fam, socket.SOCK_STREAM)
        err = s.connect_ex(dest)
        if err == errno.EADDRNOTAVAIL:
            noport += 1
            s.close()
        elif err == 0:
            clients.append(s)
        else:
            other += 1
            s.close()
    return f"ok {noport} {other}"


def cmd_bind(addr, n):
    """n sockets bound to port 0 and kept: (bound, EADDRINUSE seen, other errors)."""
    ok = inuse = other = 0
    for _ in range(int(n)):
        s = socket.socket(family_of(addr), socket.SOCK_STREAM)
        try:
            s.bind((addr, 0))
            clients.append(s)
            ok += 1
        except OSError as e:
            s.close()
            if e.errno == errno.EADDRINUSE:
                inuse += 1
            else:
                other += 1
    return f"ok {ok} {inuse} {other}"


def cmd_udp_connect(addr, port):
    """A UDP connect(): its errno (0 when it worked)."""
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    err = s.connect_ex((addr, int(port)))
    s.close()
    return f"ok {err}"


def cmd_unix_connect():
    """A connect() on a unix stream socket to a listener of our own: its errno."""
    a, path = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), f"\0ephport-peer-{os.getpid()}"
    a.bind(path)
    a.listen(1)
    b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    err = b.connect_ex(path)
    a.close()
    b.close()
    return f"ok {err}"


def cmd_connect_again(addr, port, addr2, port2):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    errs = [s.connect_ex((addr, int(port))), s.connect_ex((addr2, int(port2)))]
    if errs[1] == 0:
        clients.append(s)
    else:
        s.close()
    return f"ok {errs[0]} {errs[1]}"


def cmd_accepted(n):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with lock:
            if len(accepted) >= int(n):
                return f"ok {len(accepted)}"
        time.sleep(0.01)
    return f"err accepted {len(accepted)} of {n}"


churn = {"stop": threading.Event(), "ok": 0, "failed": 0, "thread": None}


def churn_loop(addr, port):
    for _ in range(20000):
        if churn["stop"].is_set():
            return
        s = socket.socket(family_of(addr), socket.SOCK_STREAM)
        try:
            s.connect((addr, port))
            churn["ok"] += 1
        except OSError:
            churn["failed"] += 1
        s.close()
        time.sleep(0.001)


def cmd_churn_start(addr, port):
    churn["stop"].clear()
    churn["thread"] = threading.Thread(target=churn_loop, args=(addr, int(port)), daemon=True)
    churn["thread"].start()
    return "ok"


def cmd_churn_stop():
    churn["stop"].set()
    churn["thread"].join()
    return f"ok {churn['ok']} {churn['failed']}"


def close_all(socks, reset=False):
    for s in socks:
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    socks.clear()
    return "ok"


def main():
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        try:
            if cmd == "listen":
                out = cmd_listen(*args)
            elif cmd == "connect":
                out = cmd_connect(*args)
            elif cmd == "connect-nb":
                out = cmd_connect(*args, blocking=False)
            elif cmd == "connect-par":
                out = cmd_connect_par(*args)
            elif cmd == "hammer":
                out = cmd_hammer(*args)
            elif cmd == "bind":
                out = cmd_bind(*args)
            elif cmd == "udp-connect":
                out = cmd_udp_connect(*args)
            elif cmd == "unix-connect":
                out = cmd_unix_connect()
            elif cmd == "pid":
                out = f"ok {os.getpid()}"
            elif cmd == "connect-bound":
                out = cmd_connect(*args, bind_port=True)
            elif cmd == "connect-again":
                out = cmd_connect_again(*args)
            elif cmd == "accepted":
                out = cmd_accepted(*args)
            elif cmd == "shutdown-clients":
                for s in clients:
                    s.shutdown(socket.SHUT_WR)
                out = "ok"
            elif cmd == "close-clients":
                out = close_all(clients)
            elif cmd == "close-servers":
                with lock:
                    out = close_all(accepted)
            elif cmd == "reset-clients":
                out = close_all(clients, reset=True)
            elif cmd == "reset-servers":
                with lock:
                    out = close_all(accepted, reset=True)
            elif cmd == "churn-start":
                out = cmd_churn_start(*args)
            elif cmd == "churn-stop":
                out = cmd_churn_stop()
            elif cmd == "quit":
                print("ok", flush=True)
                return
            else:
                out = f"err unknown command {cmd}"
        except Exception as e:  # report, keep serving: the test decides
            out = f"err {e}"
        print(out, flush=True)


if __name__ == "__main__":
    main()
