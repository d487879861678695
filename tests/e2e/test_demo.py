# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""demo/run ('make demo'): what a new user sees, and that it leaves nothing behind, also
when interrupted or when another agent runs. The host only: it tells what the user sees,
about two minutes of wall time; what it shows of the kernel, the other tests check on
every kernel of make vmtest."""
import os
import re
import signal
import subprocess

import pytest

from conftest import LOCK, PIN_DIR, ROOT, run

pytestmark = pytest.mark.host_only

DEMO = os.path.join(ROOT, "demo", "run")
NETNS = "ephport-demo"
HANG = 180  # only against a hang: the demo itself stops after at most about 45 s


def netns_list():
    return sorted(line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines())


def demo_processes(tmpdir):
    """Processes the demo may have started: its client and server (by comm), and anything
    whose command line names its temporary directory (the agent's --output)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if comm in ("demo-client", "demo-server") or str(tmpdir) in cmdline:
            found.append((int(pid), comm, cmdline))
    return found


def assert_nothing_left(before, tmpdir):
    assert netns_list() == before
    assert not os.path.exists(f"/run/netns/{NETNS}")
    assert not os.path.exists(PIN_DIR), os.listdir(PIN_DIR)
    assert not os.path.exists(LOCK)
    assert demo_processes(tmpdir) == []
    assert os.listdir(tmpdir) == []  # the demo's temporary directory was removed


def start_demo(tmp_path, *args):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    proc = subprocess.Popen([DEMO, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    return proc, tmpdir


def query_tables(lines):
    """The tuple row of each 'ephport query' table the demo printed, as {column: value}."""
    tables = []
    for i, line in enumerate(lines):
        if "$ ephport query" not in line:
            continue
        header, row = lines[i + 1].split(), lines[i + 2].split()
        assert header[:4] == ["NETNS", "SRC", "DST", "UTIL%"], lines[i + 1]
        assert len(row) == len(header), lines[i + 2]
        tables.append(dict(zip(header, row)))
    return tables


def test_demo_tells_the_story_and_cleans_up(tmp_path):
    before = netns_list()
    proc, tmpdir = start_demo(tmp_path)
    out, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 0, out + err
    assert err == ""
    lines = out.splitlines()

    # usage climbing in query tables, for the one tuple, up to every port
    tables = query_tables(lines[:lines.index("summary")])  # act 1's
    assert len(tables) >= 2, out
    for t in tables:
        assert (t["SRC"], t["DST"], t["CAPACITY"]) == ("127.0.0.1", "127.0.0.1:8080", "100")
    usage = [int(t["USAGE"]) for t in tables]
    assert usage == sorted(usage) and usage[0] < usage[-1] == 100, usage
    assert int(tables[-1]["FAILED"]) > 0 and tables[-1]["TIME_W"] == "100"

    # the three levels in order, each naming the client and followed by a hint
    levels = [(i, m) for i, line in enumerate(lines)
              if (m := re.search(r"pressure (\w+) \(was (\w+)\): 127\.0\.0\.1 -> 127\.0\.0\.1:8080"
                                 r" at (\d+)% .* by demo-client \(pid (\d+)", line))]
    assert [m.group(1) for _, m in levels] == ["WARNING", "CRITICAL", "EXHAUSTED"], out
    assert [m.group(2) for _, m in levels] == ["ok", "warning", "critical"]
    assert int(levels[0][1].group(3)) >= 80 and int(levels[1][1].group(3)) >= 95
    pids = {m.group(4) for _, m in levels}
    assert len(pids) == 1, pids
    pid = pids.pop()
    for i, _ in levels:
        assert lines[i + 1].strip().startswith("hint: reuse connections"), lines[i + 1]
        assert "tcp_tw_reuse=1" in lines[i + 1]
        assert lines[i + 2].strip().startswith("why:  TIME_WAIT holds"), lines[i + 2]

    # failed connects attributed to the client, counted exactly
    failed = [int(m.group(1)) for line in lines
              if (m := re.search(rf"connect_failed: demo-client \(pid {pid}\) connect\(\) to"
                                 r" 127\.0\.0\.1:8080 failed (\d+)x with EADDRNOTAVAIL", line))]
    assert failed and all(n > 0 for n in failed), out
    summary = lines[lines.index("summary"):]
    m = re.search(r"demo-client made (\d+) connections, then (\d+) connect\(\) calls failed"
                  r" with EADDRNOTAVAIL", summary[1])
    assert m and m.group(1) == "100" and int(m.group(2)) == sum(failed), summary[1]
    assert summary[2].startswith(f"  the agent counted {sum(failed)} failed connects")
    assert f"demo-client (pid {pid})" in summary[2]
    assert re.match(r"  levels: warning at .* -> critical at .* -> exhausted at ", summary[3])
    assert any("widen net.ipv4.ip_local_port_range" in line for line in summary)

    # act 2: the same client, spread over five source addresses, does not run out
    act2 = lines[lines.index("summary of act 2"):]
    m = re.match(r"  demo-client made (\d+) connections in 35 s, and 0 connect\(\) calls failed$",
                 act2[1])
    assert m and int(m.group(1)) > 150, act2[1]
    m = re.match(r"  the guard bound (\d+) of them to another source address; ports held now: "
                 r"(.*)$", act2[2])
    assert m and int(m.group(1)) > 0, act2[2]
    held = dict(w.split() for w in m.group(2).split(", "))
    assert len(held) == 5 and all(70 >= int(n) > 0 for n in held.values()), held
    assert any("connect_spread: demo-client" in line and "bound to 127.0.0.2" in line
               for line in lines), out
    # act 3: the NAT runs out, and ephport names the tuple and the client's namespace
    act3 = lines[lines.index("summary of act 3"):]
    m = re.match(r"  the client made (\d+) connections and (\d+) timed out", act3[1])
    assert m and 95 <= int(m.group(1)) <= 100 and int(m.group(2)) > 0, act3[1]
    for level in ("warning", "critical", "exhausted"):
        assert any(f"nat_pressure {level}: tcp 198.18.1.1 -> 198.18.1.2:8080" in line
                   for line in lines), out
    assert any("insert_failed +" in line for line in lines), out
    assert any("translate to more source addresses" in line for line in act3), act3
    assert lines[-1].startswith("cleaned up: client and server stopped, agent stopped")
    assert "cgroup removed" in lines[-1] and "act 3's namespaces deleted" in lines[-1]
    assert not os.path.exists(f"/proc/{pid}")
    assert_nothing_left(before, tmpdir)


def test_ctrl_c_cleans_up(tmp_path):
    before = netns_list()
    proc, tmpdir = start_demo(tmp_path)
    seen = []
    try:
        for line in proc.stdout:  # interrupt once the client runs and a table is out
            seen.append(line)
            if "$ ephport query" in line:
                break
        assert netns_list() == sorted(before + [NETNS]), "".join(seen)
        assert os.path.exists(PIN_DIR)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=HANG)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + out + err
    lines = out.splitlines()
    assert "demo: interrupted (SIGINT), cleaning up" in lines
    assert lines[-1] == ("cleaned up: client and server stopped, agent stopped (its pins under"
                         f" {PIN_DIR} removed), namespace {NETNS} deleted,"
                         " temporary files removed")
    assert "summary" not in lines
    assert_nothing_left(before, tmpdir)


def test_another_agent_running_one_line_exit_1(make_agent, tmp_path):
    agent = make_agent("--interval", "1")
    before = netns_list()
    proc, tmpdir = start_demo(tmp_path)
    out, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 1
    assert out == ""
    assert err == (f"demo: another ephport agent is running (pid {agent.proc.pid});"
                   " the demo starts its own: stop that one first\n")
    assert netns_list() == before
    assert os.listdir(tmpdir) == []
    assert agent.proc.poll() is None  # the demo left the other agent alone


def test_bad_argument_one_line_exit_2(tmp_path):
    proc, tmpdir = start_demo(tmp_path, "--fast")
    out, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 2
    assert out == ""
    assert err == "demo: unexpected argument '--fast'; usage: demo/run (as root; no options)\n"
    assert os.listdir(tmpdir) == []
