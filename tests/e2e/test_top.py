# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""ephport top in a real terminal: tmux runs it in an 80x24 window of a private server (its
own socket), send-keys types, capture-pane reads what a person would see. A client runs
out of ports while top watches; sorting, the filters and resizing work; q quits and gives
the terminal back. Not on a terminal, top prints one frame."""
import json
import os
import shutil

import pytest

from conftest import EPHPORT, eventually, run

SERVER = ("127.0.0.1", 7000)
TMUX = shutil.which("tmux")

# what a terminal shows is the same on every kernel
pytestmark = [pytest.mark.skipif(TMUX is None, reason="tmux is not installed"),
              pytest.mark.any_kernel]


class Tmux:
    """A tmux server of the test's own, with one 80x24 window running a shell."""

    def __init__(self, tmp_path):
        self.sock = str(tmp_path / "tmux.sock")
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24", "-s", "t",
                  "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=screen", "PS1=$ ",
                  "bash", "--norc", "--noprofile")
        self.tmux("set-option", "-g", "window-size", "manual")

    def tmux(self, *args, check=True):
        return run(TMUX, "-S", self.sock, *args, check=check)

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "t").stdout

    def show(self, *want, timeout=15):
        """Waits until the screen holds every string of want; returns it."""
        def check():
            s = self.screen()
            missing = [w for w in want if w not in s]
            assert not missing, f"{missing} not on the screen:\n{s}"
            return s
        return eventually(check, timeout=timeout)

    def alternate(self):
        return self.tmux("display-message", "-p", "-t", "t", "#{alternate_on}").stdout.strip()

    def close(self):
        self.tmux("kill-server", check=False)


def rows(screen, ns):
    """The tuple rows of the namespace on the screen."""
    return [line for line in screen.splitlines()
            if line.startswith(str(ns.inode)) and "127.0.0.1:7000" in line]


@pytest.fixture
def tmux(tmp_path):
    t = Tmux(tmp_path)
    yield t
    t.close()


def test_a_client_runs_out_while_top_watches(tmux, make_agent, make_netns, make_peer):
    ns = make_netns(port_range=(40000, 40019))
    peer = make_peer(ns)
    peer.cmd("listen %s %d" % SERVER)
    make_agent("--interval", "1")
    tmux.keys(f"{EPHPORT} top --netns {ns.inode}", "Enter")
    tmux.show("ephport top", f"only netns {ns.inode}", "DESTINATION", "q quit")
    assert tmux.alternate() == "1"
    # 16 of 20 ports: warning; 19: critical; then the last and one more that fails:
    # exhausted
    assert peer.connect(*SERVER, 16) == (16, 0, 0)
    tmux.show("127.0.0.1:7000", "16/20", "WARN")
    assert peer.connect(*SERVER, 3) == (3, 0, 0)
    tmux.show("19/20", "CRIT")
    assert peer.connect(*SERVER, 2) == (1, 1, 0)
    screen = tmux.show("20/20", "FULL", "connect_failed", "RECENT ALERTS")
    row, = rows(screen, ns)
    assert "20/20" in row and "########" in row
    assert all(len(line) <= 80 for line in screen.splitlines())
    pid = peer.cmd("pid")[0]
    assert f"connect_failed python3[{pid}] > 127.0.0.1:7000" in screen

    # keys: the sort, a destination filter that keeps nothing, clear, quit
    tmux.keys("s")
    tmux.show("sort: connects/s")
    tmux.keys("d")
    tmux.show("destination IP[:PORT]")
    tmux.keys("127.0.0.2:1", "Enter")
    screen = tmux.show("dst 127.0.0.2:1")
    assert not rows(screen, ns), screen
    tmux.keys("d", "nonsense", "Enter")
    tmux.show("not a destination IP[:PORT]: nonsense")
    tmux.keys("c")
    eventually(lambda: rows(tmux.screen(), ns))

    # a wider window: the source column and long level names
    tmux.tmux("resize-window", "-t", "t", "-x", "130", "-y", "30")
    tmux.show("SOURCE", "exhausted")
    tmux.tmux("resize-window", "-t", "t", "-x", "80", "-y", "24")
    screen = tmux.show("FULL")
    assert "SOURCE" not in screen

    tmux.keys("q")
    eventually(lambda: tmux.alternate() == "0", timeout=10)
    screen = tmux.show("$ ")
    assert "DESTINATION" not in screen, "the shell's screen is back"


def test_not_a_terminal_prints_one_frame(make_agent, make_netns, make_peer):
    ns = make_netns(port_range=(40000, 40019))
    peer = make_peer(ns)
    peer.cmd("listen %s %d" % SERVER)
    make_agent("--interval", "1")
    assert peer.connect(*SERVER, 17) == (17, 0, 0)

    def frame():
        r = run(EPHPORT, "top", "--netns", str(ns.inode), "--interval", "0.5", timeout=20,
                env=dict(os.environ, COLUMNS="80"))
        assert "17/20" in r.stdout, r.stdout
        return r
    r = eventually(frame, timeout=10)
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ephport top") and lines[2] == f"only netns {ns.inode}"
    assert "DESTINATION" in lines[3]
    assert "NAMESPACES (1)" in r.stdout and "q quit" not in r.stdout
    assert all(len(line) <= 80 for line in lines)
    row = next(line for line in lines if "127.0.0.1:7000" in line)
    assert "WARN" in row and "85%" in row

    j = json.loads(run(EPHPORT, "top", "--json", "--netns", str(ns.inode), "--interval",
                       "0.5", timeout=20).stdout)
    t = next(t for t in j["tuples"] if t["destination"] == "127.0.0.1:7000")
    assert (t["usage"], t["capacity"], t["level"]) == (17, 20, "warning")
    assert t["connects_per_s"] == 0 and t["seconds_to_full"] is None


def test_without_an_agent_one_line_and_status_1():
    r = run(EPHPORT, "top", check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "no ephport agent is running" in r.stderr


@pytest.mark.parametrize("args", [["--interval", "0"], ["--interval", "x"],
                                  ["--netns", "abc"], ["--dst", "nope"], ["--bogus"]])
def test_bad_options_exit_2(args):
    """The usage error every command gives: what was wrong, then the usage line."""
    r = run(EPHPORT, "top", *args, check=False)
    said = r.stderr.splitlines()
    assert r.returncode == 2 and len(said) == 2, r.stderr
    assert said[0].startswith("ephport top: ") and args[0] in said[0]
    assert said[1].startswith("usage: ephport top ")
