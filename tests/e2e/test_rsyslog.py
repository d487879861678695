# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The rsyslog example (deploy/logging/rsyslog/ephport.conf), unchanged, in a private
rsyslogd: failures and critical/exhausted pressure events reach the alerts file parsed,
once each, across logrotate-style rotations and an rsyslog restart."""
import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import EPHPORT, ROOT, check_lines, eventually

CONF = os.path.join(ROOT, "deploy", "logging", "rsyslog", "ephport.conf")
RSYSLOGD = "/usr/sbin/rsyslogd"
DEADLINE = 10  # seconds a line may take through rsyslog; only ever a deadline

# rsyslog's side is the same on every kernel
pytestmark = [pytest.mark.skipif(not os.access(RSYSLOGD, os.X_OK),
                                 reason="rsyslog is not installed"),
              pytest.mark.any_kernel]


class Rsyslog:
    """rsyslogd -n with a main config like Debian's /etc/rsyslog.conf that includes the
    shipped file, minus imuxsock and imklog: it neither listens on nor sends to /dev/log.
    Its pid file, state files and logs, rsyslog's own messages included, all live under
    one temporary directory; EPHPORT_RSYSLOG_PREFIX moves the shipped paths there."""

    def __init__(self, top):
        self.top = top
        logdir = os.path.join(top, "var", "log", "ephport")
        self.events = os.path.join(logdir, "events.jsonl")
        self.alerts_path = os.path.join(logdir, "alerts.jsonl")
        self.syslog = os.path.join(top, "syslog")
        self.conf = os.path.join(top, "rsyslog.conf")
        self.out = os.path.join(top, "rsyslogd.out")
        self.pidfile = os.path.join(top, "rsyslogd.pid")
        os.makedirs(logdir)
        os.makedirs(os.path.join(top, "spool"))
        with open(self.conf, "w") as f:
            f.write('global(processInternalMessages="on")\n'  # not to the host's /dev/log
                    f"$WorkDirectory {top}/spool\n"
                    f"$IncludeConfig {CONF}\n"
                    f"*.*;auth,authpriv.none -{self.syslog}\n")
        self.env = dict(os.environ, EPHPORT_RSYSLOG_PREFIX=top)
        self.proc = None

    def check_config(self):
        r = subprocess.run([RSYSLOGD, "-N1", "-f", self.conf], env=self.env,
                           capture_output=True, text=True)
        assert r.returncode == 0 and "error" not in r.stderr.lower(), r.stderr

    def start(self):
        with open(self.out, "ab") as out:
            self.proc = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", self.conf, "-i", self.pidfile],
                env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM: rsyslogd writes out its queue and imfile's state files, then exits."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)  # left behind by SIGKILL

    def output(self):
        with open(self.out, errors="replace") as f:
            return f.read()

    def check_position_saved(self):
        """imfile's state file (its format: "imfile-state:INODE[:HASH]", JSON) holds the
        end of the events file: a crash now does not make it read anything again."""
        st = os.stat(self.events)
        spool = os.path.join(self.top, "spool")
        for name in os.listdir(spool):
            if name.split(":")[:2] == ["imfile-state", str(st.st_ino)]:
                with open(os.path.join(spool, name)) as f:
                    text = f.read()
                try:
                    offset = json.loads(text)["curr_offs"]
                except ValueError:  # being written
                    raise AssertionError(text)
                assert offset == st.st_size, text
                return
        raise AssertionError(f"no imfile state file in {os.listdir(spool)}")

    def alert_lines(self):
        try:
            with open(self.alerts_path) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def alerts(self):
        assert self.proc is None or self.proc.poll() is None, f"rsyslogd exited: {self.output()}"
        return [json.loads(line) for line in self.alert_lines()]


@pytest.fixture
def rsyslog():
    top = tempfile.mkdtemp(prefix="ephport-rsyslog-")
    rs = Rsyslog(top)
    try:
        yield rs
    finally:
        rs.stop()
        shutil.rmtree(top, ignore_errors=True)


# The agent's lines (docs/events.md), as templates
CONNECT_FAILED = {
    "ts": "", "event": "connect_failed", "host": "node-a", "schema_version": 1, "count": 3,
    "errno": "EADDRNOTAVAIL", "pid": 4242, "tid": 4242, "comm": "python3", "uid": 0,
    "cgroup_id": 1234, "cgroup": "/user.slice", "container_id": None, "pod_uid": None,
    "netns": 4026532291, "family": "ipv4", "saddr": "127.0.0.1", "daddr": "127.0.0.1",
    "dport": 8080, "usage": 10, "capacity": 10, "utilization": 1.0}
PRESSURE = {
    "ts": "", "event": "pressure", "host": "node-a", "schema_version": 1, "level": "critical",
    "previous_level": "warning", "netns": 4026532291, "family": "ipv4", "saddr": "127.0.0.1",
    "daddr": "127.0.0.1", "dport": 8080, "usage": 96, "capacity": 100, "utilization": 0.96}
BIND_FAILED = {
    "ts": "", "event": "bind_failed", "host": "node-a", "schema_version": 1, "count": 1,
    "errno": "EADDRINUSE", "protocol": "tcp", "pid": 4242, "comm": "python3",
    "netns": 4026532291, "family": "ipv4", "saddr": "0.0.0.0"}
CONNECT_DENIED = dict(CONNECT_FAILED, event="connect_denied", errno="EPERM")
TUPLE = {"ts": "", "event": "tuple", "host": "node-a", "schema_version": 1,
         "daddr": "127.0.0.1", "dport": 8080, "usage": 10, "capacity": 10}
STATS = {"ts": "", "event": "stats", "host": "node-a", "schema_version": 1, "tuples": 3}


def batch(n):
    """Every kind of line once, (event or raw line, routed to alerts?); n makes them unique.
    The last line is routed: once it arrived, imfile has read the whole batch."""
    return [
        (dict(TUPLE, usage=n), False),
        (dict(PRESSURE, level="warning", previous_level="ok", usage=80 + n), False),
        (dict(PRESSURE, usage=96 + n), True),
        (dict(PRESSURE, level="exhausted", previous_level="critical", usage=100 + n), True),
        (dict(BIND_FAILED, count=n, pid=5000 + n, comm=f"srv{n}"), True),
        (dict(CONNECT_DENIED, count=n, pid=6000 + n, dport=9000 + n), True),
        (dict(STATS, tuples=n), False),
        ('{"ts":"2026-11-22T01:37:45.070Z","event":"connect_failed","count":', False),  # torn
        (dict(CONNECT_FAILED, count=n, pid=4000 + n, comm=f"cli{n}", dport=8000 + n), True),
    ]


class FakeAgent:
    """Appends lines to its file like the agent, and reopens it on sighup(). Every other
    line has spaces after ":" and ",": an alert serialized from the parsed fields is never
    such a raw line."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "a")
        self.lines = 0
        self.spaced_alerts = set()

    def write(self, lines):
        """Write lines; returns the events that must reach the alerts file."""
        routed = []
        for ev, alert in lines:
            if isinstance(ev, dict):
                sec, ms = divmod(self.lines, 1000)
                ev = dict(ev, ts=f"2026-11-22T01:38:{sec:02d}.{ms:03d}Z")
                spaced = self.lines % 2 == 1
                line = json.dumps(ev, separators=(", ", ": ") if spaced else (",", ":"))
                if spaced and alert:
                    self.spaced_alerts.add(line)
            else:
                line = ev
            self.f.write(line + "\n")
            self.lines += 1
            if alert:
                routed.append(ev)
        self.f.flush()
        return routed

    def sighup(self):
        self.f.close()
        self.f = open(self.path, "a")

    def close(self):
        self.f.close()


def test_alerts_from_fake_agent_across_rotations(rsyslog):
    rs = rsyslog
    rs.check_config()
    rs.start()  # before the agent: no events file yet
    agent = FakeAgent(rs.events)
    expected = []

    def arrived():
        assert rs.alerts() == expected  # in order, each once, nothing else

    try:
        expected += agent.write(batch(1))
        eventually(arrived, DEADLINE)

        # logrotate with "create" and a postrotate SIGHUP: rename, new empty file, reopen
        os.rename(rs.events, rs.events + ".1")
        open(rs.events, "x").close()
        agent.sighup()
        expected += agent.write(batch(2))
        eventually(arrived, DEADLINE)

        # logrotate copytruncate: the agent keeps appending to its open file. Less is
        # written after than before, so imfile sees the file shrink whenever it looks.
        size = os.path.getsize(rs.events)
        shutil.copyfile(rs.events, rs.events + ".2")
        os.truncate(rs.events, 0)
        expected += agent.write(batch(3)[-3:])
        assert os.path.getsize(rs.events) < size
        eventually(arrived, DEADLINE)

        # rsyslog restarts, or crashes, while the agent writes: imfile goes on where it
        # stopped (its state file, written after each batch), nothing is read twice
        for n, sig in ((4, signal.SIGTERM), (5, signal.SIGKILL)):
            eventually(rs.check_position_saved, DEADLINE)
            rs.stop(sig)
            expected += agent.write(batch(n))
            rs.start()
            eventually(arrived, DEADLINE)
    finally:
        agent.close()
        rs.stop()  # flushes everything: a late duplicate would be in the file now

    assert rs.alerts() == expected
    assert len(expected) == 5 + 5 + 1 + 5 + 5
    assert agent.spaced_alerts and not agent.spaced_alerts & set(rs.alert_lines())
    assert {e["event"] for e in expected} == {"connect_failed", "bind_failed", "connect_denied",
                                             "pressure"}
    # the events stay in their own ruleset: none reaches the rule of /var/log/syslog,
    # which has rsyslogd's own messages only
    with open(rs.syslog) as f:
        syslog = f.read()
    assert "rsyslogd" in syslog and "ephport:" not in syslog and '"event"' not in syslog


def read_events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def test_alerts_from_agent_across_rotation(rsyslog, make_netns, make_peer):
    rs = rsyslog
    rs.check_config()
    rs.start()
    ns = make_netns((40000, 40009))  # 10 ports
    peer = make_peer(ns)
    peer.cmd("listen 127.0.0.1 8080")

    def failed(e):
        return (e["event"] == "connect_failed" and e["netns"] == ns.inode
                and (e["daddr"], e["dport"]) == ("127.0.0.1", 8080) and e["count"] >= 1)

    def exhausted(e):
        return (e["event"] == "pressure" and e["netns"] == ns.inode and e["dport"] == 8080
                and e["level"] in ("critical", "exhausted"))

    with open(os.path.join(rs.top, "agent.err"), "w+") as err:
        agent = subprocess.Popen([EPHPORT, "agent", "--output", rs.events, "--interval", "1",
                                  "--hold", "1"], stdout=subprocess.DEVNULL, stderr=err)
        try:
            def started():
                if agent.poll() is not None:
                    pytest.fail(f"agent exited: {open(err.name).read()}")
                assert os.path.exists(rs.events)
                assert any(e["event"] == "agent_start" for e in read_events(rs.events))
            eventually(started, 15)

            assert peer.connect("127.0.0.1", 8080, 10) == (10, 0, 0)  # every port held
            assert peer.connect("127.0.0.1", 8080, 5) == (0, 5, 0)

            def alerted():
                alerts = rs.alerts()
                assert any(failed(e) for e in alerts), alerts
                assert any(exhausted(e) for e in alerts), alerts
            eventually(alerted, DEADLINE)

            # logrotate: rename, then SIGHUP makes the agent reopen (create) its file
            seen = len(rs.alerts())
            os.rename(rs.events, rs.events + ".1")
            agent.send_signal(signal.SIGHUP)

            def reopened():
                assert os.path.exists(rs.events), "the agent did not reopen its file"
            eventually(reopened, DEADLINE)
            assert peer.connect("127.0.0.1", 8080, 5) == (0, 5, 0)

            def alerted_again():
                new = [e for e in rs.alerts()[seen:] if failed(e)]
                assert new, "no connect_failed alert after the rotation"
                in_new_file = read_events(rs.events)
                assert any(e in in_new_file for e in new), (new, in_new_file)
            eventually(alerted_again, DEADLINE)
        finally:
            if agent.poll() is None:
                agent.send_signal(signal.SIGINT)
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()

    lines = rs.alert_lines()
    assert len(set(lines)) == len(lines), "an alert arrived twice"
    written = []
    for path in (rs.events + ".1", rs.events):
        with open(path) as f:
            written += f.readlines()
    check_lines(written)
