# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""--output (docs/security.md, "The output file and signals"): what the agent refuses to
open, and how it writes to a full disk. Each test failed before the fix."""
import fcntl
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import EPHPORT, PIN_DIR, ROOT, Agent, check_lines, run

# how the agent opens and writes its output file: the same on every kernel
pytestmark = pytest.mark.any_kernel

LOADGEN = os.path.join(ROOT, "build", "loadgen")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:
        return None, str(e)


def refused(path, *args):
    """The agent given --output path: it must exit at once, non-zero, with one line, and
    leave nothing behind. Returns that line."""
    had_pins = os.path.exists(PIN_DIR)
    port = free_port()
    proc = subprocess.Popen([EPHPORT, "agent", "--output", str(path), "--metrics-addr",
                             f"127.0.0.1:{port}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        health = status(f"http://127.0.0.1:{port}/healthz")[0]
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        pytest.fail(f"the agent started with --output {path} (/healthz: {health})")
    assert proc.returncode == 1, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ephport: cannot open {path} for appending: "), err
    assert os.path.exists(PIN_DIR) == had_pins
    return lines[0]


def test_symlink_refused(tmp_path):
    target = tmp_path / "target.jsonl"
    link = tmp_path / "events.jsonl"
    link.symlink_to(target)
    line = refused(link)
    assert "symbolic link" in line
    assert not target.exists()


def test_other_users_file_refused(tmp_path):
    theirs = tmp_path / "events.jsonl"
    theirs.write_text("theirs\n")
    os.chown(theirs, 65534, 65534)
    line = refused(theirs)
    assert line.endswith("it belongs to uid 65534, not to the agent's uid 0")
    assert theirs.read_text() == "theirs\n"


def test_fifo_refused(tmp_path):
    """Before the fix the open waited for a reader, for ever, while /healthz said 200."""
    fifo = tmp_path / "events.jsonl"
    os.mkfifo(fifo)
    assert refused(fifo).endswith("it is a FIFO or a socket, not a regular file")


def test_device_refused():
    assert refused("/dev/null").endswith("it is a device, not a regular file")


def scrape(url, name):
    code, text = status(url)
    assert code == 200, text
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(name + " ")]
    return values[0] if values else None  # None: not there


@pytest.fixture
def tiny_tmpfs():
    mnt = tempfile.mkdtemp(prefix="ephport-test-full-")
    try:
        run("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", mnt)
    except subprocess.CalledProcessError as e:
        os.rmdir(mnt)
        pytest.skip(f"cannot mount a tmpfs: {e.stderr.strip()}")
    try:
        yield mnt
    finally:
        run("umount", mnt, check=False)
        os.rmdir(mnt)


def fill(path):
    """Fills the file system path is on, a page at a time, then byte by byte."""
    with open(path, "wb", buffering=0) as f:
        for chunk in (4096, 1):
            try:
                while True:
                    f.write(b"x" * chunk)
            except OSError as e:
                assert e.errno == 28, e  # ENOSPC


def test_full_disk(tiny_tmpfs):
    """--output on a 64 KiB tmpfs, filled while the agent writes a stats line a second:
    it runs on, /healthz says 200, ephport_output_errors_total counts, one line on
    stderr says so; once there is room, lines come again, and none is glued to a line cut
    short. Before the fix: a cut line and the next were one line, no counter, no word."""
    out = os.path.join(tiny_tmpfs, "events.jsonl")
    filler = os.path.join(tiny_tmpfs, "filler")
    agent = Agent("--interval", "1", "--output", out, "--metrics-addr", "127.0.0.1:0")
    try:
        metrics = agent.start_event["settings"]["metrics"]["url"]
        health = metrics.replace("/metrics", "/healthz")
        fill(filler)
        time.sleep(4)  # four stats lines, each refused in part or whole
        assert agent.proc.poll() is None
        assert status(health)[0] == 200
        # /metrics is rendered at a check after it was asked for: ask until it counts
        deadline = time.monotonic() + 5
        while not (errors := scrape(metrics, "ephport_output_errors_total")):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        os.unlink(filler)
        size = os.path.getsize(out)
        deadline = time.monotonic() + 10
        while os.path.getsize(out) < size + 2000:  # a stats line at least
            assert time.monotonic() < deadline, "no line written once there was room"
            time.sleep(0.1)
    finally:
        rc = agent.stop()
    err = agent.proc.stderr.read()
    with open(out, "rb") as f:
        lines = f.read().decode().splitlines(keepends=True)
    # no line holds two, whole or cut
    glued = [line for line in lines if line.count('{"ts":') != 1 or not line.startswith('{"ts":')]
    assert not glued, f"glued lines: {glued[:2]}"
    whole = [line for line in lines if _parses(line)]
    cut = len(lines) - len(whole)
    assert cut <= 2, f"{cut} lines cut short"
    check_lines(whole)
    events = [json.loads(line) for line in whole]
    assert events[0]["event"] == "agent_start" and events[-1]["event"] == "agent_stop"
    assert rc == 0
    assert errors and errors > 0, f"ephport_output_errors_total: {errors}"
    said = [line for line in err.splitlines() if "cannot write to" in line]
    assert len(said) == 1, err
    assert f"cannot write to {out}: No space left on device" in said[0]
    later = [e for e in events if e["event"] == "stats" and e["lines_dropped"] > 0]
    assert later, "no stats line counts the lines lost"


def _parses(line):
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def test_a_reader_that_stopped_gets_no_cut_line(make_netns):
    """Standard output is a pipe whose reader stopped reading, while a snapshot of 200
    tuples is being written. The agent still stops at SIGINT (it waits two seconds for the
    writer, then lets the queued lines go), and the pipe then holds whole lines only: a
    write to a pipe is atomic up to PIPE_BUF bytes, and the writer never puts more lines
    in one write. Failed before: the pipe ended in the middle of a line."""
    ns = make_netns()
    made = json.loads(ns.exec(LOADGEN, "-c", "fin", "-n", "1", "-t", "1", "-j",
                              "--addresses", "200", "--count", "200").stdout)
    assert made["connections"] == 200, made  # 200 tuples, a TIME_WAIT socket each
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen([EPHPORT, "agent", "--interval", "1"], stdout=w,
                            stderr=subprocess.PIPE, text=True)
    os.close(w)
    try:
        time.sleep(4)  # a snapshot: 200 tuple lines of about 400 bytes
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        with os.fdopen(r, "rb") as f:
            text = f.read().decode()
        r = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if r is not None:
            os.close(r)
    assert text.endswith("\n"), text[-300:]
    lines = text.splitlines(keepends=True)
    assert json.loads(lines[0])["event"] == "agent_start"
    check_lines(lines)
