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
    """Events the kernel made on the tracepoints ephport counts from (each counted in a
    tracefs instance of our own) against the runs and skipped runs of ephport's program on
    each (BPF statistics on): TCP state changes, and the timer starts and stops that show
    TIME_WAIT sockets come and go. One kernel was measured running no BPF program at all
    for some of them under heavy churn (docs/kernels.md): there no count can be exact, and
    a test says so instead of failing.

    The two counts cannot be read at one instant. The programs' runs are read before the
    trace is turned on and again after (turning on a trace event patches the kernel's code
    and takes a while, under churn hundreds of events), and likewise around the end: every
    event the trace counted happened between the first reading and the last, so no loss is
    claimed while fired <= runs over that span. "slack" is the runs at the two edges,
    outside the span compared but inside that one."""

    count = 0
    # (trace event, the ephport program on its tracepoint)
    TRACKED = (("sock/inet_sock_set_state", "tuples_set_state"),
               ("timer/timer_start", "tw_timer_start"),
               ("timer/timer_cancel", "tw_timer_cancel"))

    def __init__(self):
        Census.count += 1
        self.dir = f"{TRACEFS}/instances/ephport-test-{os.getpid()}-{Census.count}"
        self.fired = self.delivered = None
        self.dirs = []

    @classmethod
    def _delivered(cls):
        return [sum(sum(struct.unpack_from("=QQQ", info, PROG_STATS_AT)[1:])
                    for info in _programs(prog).values()) for _, prog in cls.TRACKED]

    @classmethod
    def _attached(cls):
        links = {struct.unpack_from("=III", info)[2]
                 for _, info in _objects(BPF_LINK_GET_NEXT_ID, BPF_LINK_GET_FD_BY_ID)}
        return all(set(_programs(prog)) & links for _, prog in cls.TRACKED)

    def when_attached(self, timeout=60.0):
        """Start counting as soon as the programs are attached: an agent's start-up, from
        its first events on. Polls every millisecond; False if they never were."""
        deadline = time.monotonic() + timeout
        while not self._attached():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        self.__enter__()
        return True

    def _trace(self, on):
        for d, (event, _) in zip(self.dirs, self.TRACKED):
            with open(f"{d}/events/{event}/enable", "w") as f:
                f.write("1\n" if on else "0\n")

    def __enter__(self):
        with open("/proc/sys/kernel/bpf_stats_enabled") as f:
            self.stats_was = f.read().strip()
        _sysctl("kernel.bpf_stats_enabled", "1")
        try:
            for i in range(len(self.TRACKED)):
                os.mkdir(f"{self.dir}-{i}")
                self.dirs.append(f"{self.dir}-{i}")
        except OSError:
            self._remove()
            self.dir = None  # no tracefs: nothing to compare with
            return self
        for d in self.dirs:
            with open(f"{d}/buffer_size_kb", "w") as f:
                f.write("64\n")
        before = self._delivered()
        self._trace(True)
        self.start = self._delivered()
        self.start_slack = [s - b for b, s in zip(before, self.start)]
        return self

    def _remove(self):
        for d in self.dirs:
            os.rmdir(d)
        self.dirs = []

    def _fired(self):
        out = []
        for d in self.dirs:
            fired = 0
            for cpu in os.listdir(f"{d}/per_cpu"):
                with open(f"{d}/per_cpu/{cpu}/stats") as f:
                    st = dict(l.split(":", 1) for l in f if ":" in l)
                # those the buffer holds, overwrote, or lost to nested writes
                fired += sum(int(st.get(k, 0)) for k in
                             ("entries", "overrun", "commit overrun", "dropped events"))
            out.append(fired)
        return out

    def _compare(self, stop_trace=False):
        """fired against runs: the trace counts read between two readings of the runs"""
        now = self._delivered()
        if stop_trace:
            self._trace(False)
        self.fired = self._fired()
        after = self._delivered()
        self.delivered = [b - a for a, b in zip(self.start, now)]
        self.slacks = [s + b - a for s, a, b in zip(self.start_slack, now, after)]

    def lost_so_far(self):
        """lost(), counted up to now"""
        self._compare()
        return self.lost()

    def __exit__(self, *exc):
        if self.dir:
            self._compare(stop_trace=True)
            self._remove()
        _sysctl("kernel.bpf_stats_enabled", self.stats_was)
        return False

    def lost(self):
        """Events no BPF program was run for, beyond what the readings' timing can explain
        (0 if unknown)."""
        if self.fired is None:
            return 0
        return sum(self.lost_by_event().values())

    def lost_by_event(self):
        """lost(), per trace event ("sock/inet_sock_set_state": n, ...)"""
        if self.fired is None:
            return {event: 0 for event, _ in self.TRACKED}
        return {event: max(0, f - d - s) for (event, _), f, d, s
                in zip(self.TRACKED, self.fired, self.delivered, self.slacks)}

    def events(self):
        """events the trace counted"""
        return sum(self.fired or ())
