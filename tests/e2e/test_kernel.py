# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""What agent_start says about the kernel, against independent readings: bpftool's own
helper probes and the kernel's BTF. make vmtest runs this on every kernel of the matrix,
so each feature is checked where it is present and where it is not (docs/kernels.md)."""
import json
import os
import re

import pytest

from conftest import run


def bpftool_helpers(prog_type):
    """The helpers bpftool's probe finds for a program type."""
    doc = json.loads(run("bpftool", "-j", "feature", "probe", "kernel").stdout)
    return set(doc["helpers"][f"{prog_type}_available_helpers"])


def btf_types():
    """{id: (kind, name, [member names and type ids])} from the kernel's BTF."""
    types, cur = {}, None
    out = run("bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw").stdout
    for line in out.splitlines():
        m = re.match(r"\[(\d+)\] (\w+) '([^']*)'", line)
        if m:
            cur = types[int(m[1])] = (m[2], m[3], [])
            continue
        m = re.match(r"\t'([^']*)' type_id=(\d+)", line)
        if m and cur is not None:
            cur[2].append((m[1], int(m[2])))
    return types


@pytest.fixture(scope="module")
def btf():
    return btf_types()


def member(btf, struct, name):
    for kind, sname, members in btf.values():
        if kind == "STRUCT" and sname == struct:
            return next((tid for mname, tid in members if mname == name), None)
    return None


def test_features_match_the_kernel(agent, btf):
    start = agent.start_event
    assert start["kernel"]["release"] == os.uname().release
    f = start["kernel"]["features"]
    # helpers: the same answer bpftool's probes give
    assert f["bpf_task_pt_regs"] == ("bpf_task_pt_regs" in bpftool_helpers("tracepoint"))
    assert f["bpf_set_retval"] == ("bpf_set_retval" in bpftool_helpers("cgroup_sock_addr"))
    # layouts: what the kernel's BTF says
    assert f["recursion_misses"] == (member(btf, "bpf_prog_stats", "misses") is not None)
    assert f["tw_connect_bind"] == (member(btf, "inet_timewait_sock", "tw_connect_bind")
                                    is not None)
    assert f["map_mem_usage"] == (member(btf, "bpf_map_ops", "map_mem_usage") is not None)
    assert f["map_memcg"] == (member(btf, "bpf_map", "memory") is None)
    assert f["tracing_map_alloc"] == any(kind == "STRUCT" and name == "bpf_mem_alloc"
                                         for kind, name, _ in btf.values())
    range_type = member(btf, "local_ports", "range")
    assert range_type is not None
    assert f["port_range_packed"] == (btf[range_type][0] != "ARRAY")


def test_notes_say_what_degrades(agent):
    """On a kernel that lacks a feature the agent runs and says so on stderr once it runs;
    on one that has them all it says nothing."""
    f = agent.start_event["kernel"]["features"]
    agent.stop()
    notes = [l for l in agent.proc.stderr.read().splitlines() if "note:" in l]
    expected = [name for name, present in [("bpf_task_pt_regs", f["bpf_task_pt_regs"]),
                                            ("skipped BPF runs", f["recursion_misses"])]
                if not present]
    assert len(notes) == len(expected), notes
    for name, note in zip(expected, notes):
        assert name in note and os.uname().release in note
