# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Whether the kernel let the agent's programs see every TCP state change: the end-to-end
tests and the soak use it to tell a count ephport got wrong from one the kernel kept
from BPF (docs/kernels.md)."""
import ctypes
import os
import struct
import time


def _sysctl(name, value):
    with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
        f.write(value + "\n")


TRACEFS = "/sys/kernel/tracing"


# bpf(2) commands, and where struct bpf_prog_info and bpf_link_info keep what is read here
BPF_PROG_GET_NEXT_ID, BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD = 11, 13, 15
BPF_LINK_GET_FD_BY_ID, BPF_LINK_GET_NEXT_ID = 30, 31
PROG_NAME_AT, PROG_STATS_AT = 64, 192  # name[16]; run_time_ns, run_cnt, recursion_misses
_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd, *fields):
    attr = ctypes.create_string_buffer(struct.pack("=" + "I" * len(fields), *fields), 128)
    return _libc.syscall(321, cmd, attr, 128), attr  # 321: __NR_bpf on x86_64


def _objects(next_cmd, fd_cmd):
    """(id, info bytes) of every program or link: a few microseconds each, where bpftool
    takes tens of milliseconds to list them."""
    obj_id = 0
    while True:
        r, attr = _bpf(next_cmd, obj_id)
        if r < 0:
            return
        obj_id = struct.unpack_from("=I", attr, 4)[0]
        fd, _ = _bpf(fd_cmd, obj_id)
        if fd < 0:
            continue  # gone meanwhile
        info = ctypes.create_string_buffer(256)
        attr = ctypes.create_string_buffer(struct.pack("=IIQ", fd, 256, ctypes.addressof(info)))
        r = _libc.syscall(321, BPF_OBJ_GET_INFO_BY_FD, attr, 16)
        os.close(fd)
        if r == 0:
            yield obj_id, info.raw


def _programs(name):
    """ids of the loaded programs of this name (the kernel keeps its first 15 bytes)"""
    want = name.encode()[:15]
    return {i: info for i, info in _objects(BPF_PROG_GET_NEXT_ID, BPF_PROG_GET_FD_BY_ID)
            if info[PROG_NAME_AT:PROG_NAME_AT + 16].split(b"\0")[0] == want}


class Census:
    """TCP state changes the kernel made (its sock:inet_sock_set_state trace event, counted
    in a tracefs instance of our own) against those that reached tuples_set_state (its runs
    and skipped runs, with BPF statistics on). One kernel was measured running no BPF
    program at all for some changes under heavy churn (docs/kernels.md): there no count
    can be exact, and a test says so instead of failing.

    The two counts cannot be read at one instant: the trace is turned on before the first
    reading of the programs and off after the last, so changes in between count as fired
    and not delivered. "slack" is how many that can be, measured: twice the changes that
    reached the program while one reading was taken, at each end."""

    count = 0
    PROGRAM = "tuples_set_state"

    def __init__(self):
        Census.count += 1
        self.dir = f"{TRACEFS}/instances/ephport-test-{os.getpid()}-{Census.count}"
        self.fired = self.delivered = None
        self.slack = 0

    @classmethod
    def _delivered(cls):
        return sum(sum(struct.unpack_from("=QQQ", info, PROG_STATS_AT)[1:])
                   for info in _programs(cls.PROGRAM).values())

    def _reading(self):
        """one reading of the runs, and the slack it adds"""
        first = self._delivered()
        second = self._delivered()
        self.slack += 2 * (second - first) + 1
        return second

    @classmethod
    def _attached(cls):
        ids = set(_programs(cls.PROGRAM))
        return any(struct.unpack_from("=III", info)[2] in ids
                   for _, info in _objects(BPF_LINK_GET_NEXT_ID, BPF_LINK_GET_FD_BY_ID))

    def when_attached(self, timeout=60.0):
        """Start counting as soon as tuples_set_state is attached: an agent's start-up,
        from its first events on. Polls every millisecond; False if it never was."""
        deadline = time.monotonic() + timeout
        while not self._attached():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        self.__enter__()
        return True

    def __enter__(self):
        with open("/proc/sys/kernel/bpf_stats_enabled") as f:
            self.stats_was = f.read().strip()
        _sysctl("kernel.bpf_stats_enabled", "1")
        try:
            os.mkdir(self.dir)
        except OSError:
            self.dir = None  # no tracefs: nothing to compare with
            return self
        with open(f"{self.dir}/buffer_size_kb", "w") as f:
            f.write("64\n")
        with open(f"{self.dir}/events/sock/inet_sock_set_state/enable", "w") as f:
            f.write("1\n")
        self.start = self._reading()
        return self

    def _fired(self):
        fired = 0
        for cpu in os.listdir(f"{self.dir}/per_cpu"):
            with open(f"{self.dir}/per_cpu/{cpu}/stats") as f:
                st = dict(l.split(":", 1) for l in f if ":" in l)
            # those the buffer holds, overwrote, or lost to nested writes
            fired += sum(int(st.get(k, 0)) for k in
                         ("entries", "overrun", "commit overrun", "dropped events"))
        return fired

    def read(self):
        """Changes counted and changes that reached the program, so far."""
        delivered = self._reading() - self.start
        return self._fired(), delivered

    def __exit__(self, *exc):
        if self.dir:
            delivered = self._reading() - self.start
            with open(f"{self.dir}/events/sock/inet_sock_set_state/enable", "w") as f:
                f.write("0\n")
            self.fired, self.delivered = self._fired(), delivered
            os.rmdir(self.dir)
        _sysctl("kernel.bpf_stats_enabled", self.stats_was)
        return False

    def lost(self):
        """State changes no BPF program was run for, beyond what the readings' timing can
        explain (0 if unknown)."""
        if self.fired is None:
            return 0
        return max(0, self.fired - self.delivered - self.slack)
