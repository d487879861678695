# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A local user against the agent's files (docs/security.md): a pin directory made while
no agent ran, a symlink in its place, a map swapped under a reader, a lock held by someone
else. The agent's directories are root's alone (user/privdir.c)."""
import os
import shutil
import signal
import stat
import subprocess
import time

from conftest import EPHPORT, LOCK, PIN_DIR, run

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
RUN_DIR = os.path.dirname(LOCK)
BPFFS = os.path.dirname(PIN_DIR)


def assert_root_only(path, mode=0o700):
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode), f"{path} is not a directory"
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, mode), \
        f"{path}: uid {st.st_uid}, mode {oct(stat.S_IMODE(st.st_mode))}"


def stderr_of(agent):
    agent.stop()
    return agent.proc.stderr.read()


def no_pin_directory():
    """No agent runs between tests: what may be there is a killed one's pins."""
    if os.path.islink(PIN_DIR):
        os.unlink(PIN_DIR)
    shutil.rmtree(PIN_DIR, ignore_errors=True)


def test_a_pin_directory_a_user_made_is_replaced(make_agent):
    no_pin_directory()
    # what a user can do on a bpffs mounted 1777 while no agent runs
    os.mkdir(PIN_DIR)
    os.mkdir(os.path.join(PIN_DIR, "theirs"))
    for p in (PIN_DIR, os.path.join(PIN_DIR, "theirs")):
        os.chown(p, 65534, 65534)
        os.chmod(p, 0o777)
    try:
        agent = make_agent()
        assert_root_only(PIN_DIR)
        assert sorted(os.listdir(PIN_DIR)) == sorted(
            agent.start_event["maps"][m].rsplit("/", 1)[1]
            for m in agent.start_event["maps"] if agent.start_event["maps"][m])
        # the user can no longer reach in
        r = subprocess.run([*NOBODY, "ls", PIN_DIR], capture_output=True, text=True)
        assert r.returncode != 0 and "Permission denied" in r.stderr
        err = stderr_of(agent)
        assert "was not the agent's own (owner uid 65534, mode 0777, a directory): replaced" \
            in err, err
    finally:
        shutil.rmtree(PIN_DIR, ignore_errors=True)
    assert not os.path.lexists(PIN_DIR)
    assert not [n for n in os.listdir(BPFFS) if n.startswith("ephport-untrusted")]


def test_a_symlink_for_the_pin_directory_is_replaced_not_followed(make_agent):
    no_pin_directory()
    target = os.path.join(BPFFS, f"ephport-test-target-{os.getpid()}")
    try:
        os.makedirs(os.path.join(target, "kept"))
        os.symlink(target, PIN_DIR)
        agent = make_agent()
        assert_root_only(PIN_DIR)
        assert os.path.isdir(os.path.join(target, "kept")), "the symlink's target was touched"
        assert "a symlink): replaced" in stderr_of(agent)
    finally:
        if os.path.islink(PIN_DIR):
            os.unlink(PIN_DIR)
        shutil.rmtree(target, ignore_errors=True)


def test_guard_status_reads_only_the_agents_map(make_agent):
    make_agent()
    ok = subprocess.run([EPHPORT, "guard", "status"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    # a pin swapped for a map whose values are larger than the reader's buffer
    pin = os.path.join(PIN_DIR, "guard_info")
    os.unlink(pin)
    run("bpftool", "map", "create", pin, "type", "array", "key", "4", "value", "65536",
        "entries", "1", "name", "swapped")
    r = subprocess.run([EPHPORT, "guard", "status"], capture_output=True, text=True)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.splitlines() == [
        f"ephport: {pin} is not the agent's map (its type or sizes differ): not reading it"]
    # a pin directory opened to everyone meanwhile: nothing in it is read
    os.chmod(PIN_DIR, 0o777)
    r = subprocess.run([EPHPORT, "guard", "status"], capture_output=True, text=True)
    assert r.returncode == 1 and "is not root's alone" in r.stderr, r.stderr
    os.chmod(PIN_DIR, 0o700)


HOLD_LOCK = """
import fcntl, sys, time
try:
    f = open(sys.argv[1])
except OSError as e:
    print("cannot open:", e.strerror, flush=True)
    sys.exit(3)
print("waiting", flush=True)
fcntl.lockf(f, fcntl.LOCK_SH)
print("holding", flush=True)
time.sleep(60)
"""


def test_a_user_cannot_wait_for_the_lock_and_block_restarts(make_agent):
    first = make_agent()
    user = subprocess.Popen([*NOBODY, "/usr/bin/python3", "-c", HOLD_LOCK, LOCK],
                            stdout=subprocess.PIPE, text=True)
    try:
        said = user.stdout.readline().strip()
        # killed (OOM, a crash): the lock file stays, and a user waiting on it gets it
        first.stop(signal.SIGKILL)
        time.sleep(0.2)
        second = make_agent()
        assert second.proc.poll() is None
        assert said == "cannot open: Permission denied", said
        assert_root_only(RUN_DIR)
        assert stat.S_IMODE(os.stat(LOCK).st_mode) == 0o600
    finally:
        user.kill()
        user.wait()


def test_an_older_agents_modes_are_tightened(make_agent):
    os.makedirs(RUN_DIR, exist_ok=True)
    os.chmod(RUN_DIR, 0o755)
    with open(LOCK, "w"):
        pass
    os.chmod(LOCK, 0o644)
    make_agent()
    assert_root_only(RUN_DIR)
    assert stat.S_IMODE(os.stat(LOCK).st_mode) == 0o600
