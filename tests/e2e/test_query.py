# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""ephport query and the agent's answers (user/agent_query.c): a reader that is slow
keeps the answer it was given while others are answered; answers of any size follow
each other on the one memory file the agent keeps; the file goes when no one asks; a
client of another version is told so."""
import json
import os
import socket
import struct
import subprocess

import pytest

from conftest import EPHPORT, ROOT, eventually, query

LOADGEN = os.path.join(ROOT, "build", "loadgen")
SOCK = "/run/ephport/query.sock"
EPROTO = 71


def in_netns(ns):
    return {(t["daddr"], t["dport"]) for t in query("--netns", str(ns.inode))["tuples"]}


def connect(ns, addresses, first=7000):
    ns.exec(LOADGEN, "-c", "fin", "-n", "1", "-p", str(first), "--addresses", str(addresses),
            "--count", str(addresses))


def assert_tuples(ns, n):
    assert len(in_netns(ns)) == n


def assert_no_answer_file(pid):
    assert answer_files(pid) == [], "the agent still holds its answer file"


def answer_files(pid):
    """The agent's descriptors of memory files made for answers."""
    fds, found = f"/proc/{pid}/fd", []
    for fd in os.listdir(fds):
        try:
            if os.readlink(os.path.join(fds, fd)).startswith("/memfd:ephport-query"):
                found.append(fd)
        except FileNotFoundError:
            pass  # closed since the listing
    return found


def test_a_slow_reader_keeps_its_answer(make_agent, make_netns):
    agent = make_agent()
    ns = make_netns(port_range=(20000, 29999))
    ns.sysctl("net.ipv4.tcp_tw_reuse", 0)
    connect(ns, 1000)  # 1,000 tuples: an answer of about 350 KB, more than a pipe holds
    eventually(lambda: assert_tuples(ns, 1000))
    slow = subprocess.Popen([EPHPORT, "query", "--json", "--netns", str(ns.inode)],
                            stdout=subprocess.PIPE)
    try:
        # its first byte: it has the answer and is stuck writing it to the full pipe
        first = slow.stdout.read(1)
        connect(ns, 100, first=8000)
        # asked meanwhile: answered in full, with what came since
        assert len(in_netns(ns)) == 1100
        small = query("--netns", str(ns.inode), "--dst", "127.0.0.1:7000")["tuples"]
        assert [(t["daddr"], t["dport"]) for t in small] == [("127.0.0.1", 7000)]
        rest = slow.stdout.read()
    finally:
        slow.kill()
        slow.wait()
    doc = json.loads(first + rest)
    assert len(doc["tuples"]) == 1000, "the slow reader's answer is the one it was given"
    # the kept file again, a long answer and then a short one over it
    assert len(in_netns(ns)) == 1100
    small = query("--netns", str(ns.inode), "--dst", "127.0.0.1:8000")["tuples"]
    assert [(t["daddr"], t["dport"]) for t in small] == [("127.0.0.1", 8000)]
    out = subprocess.run([EPHPORT, "query", "--netns", str(ns.inode), "--dst", "127.0.0.1:8000"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) >= 2 and out[1].split()[2] == "127.0.0.1:8000", out[:3]
    assert len(answer_files(agent.proc.pid)) <= 1


@pytest.mark.host_only  # a timer of the agent's: 25 s of waiting, the same on every kernel
def test_the_kept_answer_goes_when_no_one_asks(agent):
    query()
    assert len(answer_files(agent.proc.pid)) == 1
    # kept 10 s after the latest question (ANSWER_KEEP_NS), then let go at a check
    eventually(lambda: assert_no_answer_file(agent.proc.pid), timeout=20)
    assert query()["stats"]["max_tuples"] > 0


def test_a_client_of_another_version_is_told(agent):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(SOCK)
        s.sendall(struct.pack("<II", 1, 1))  # version 1's first fields, and no more
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    err, = struct.unpack_from("<i", reply)
    msg = reply[4:].split(b"\0")[0].decode()
    assert err == -EPROTO
    assert "did not understand the question" in msg and "same version" in msg
    assert query()["stats"]["max_tuples"] > 0
