# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""make vmtest's pytest plugin (loaded in the guest with -p shard): which tests this VM runs.

EPHPORT_SHARD=I/N: this VM runs the I-th of N parts of the suite. Whole modules go to a
part (their fixtures are set up once), the longest first to the part with the least so
far, by the guest seconds in tests/vm/weights; so every VM computes the same split.

EPHPORT_ANY_KERNEL=0: not the kernel of the run that takes the tests marked any_kernel
(tests/e2e/conftest.py): they run on one kernel only."""
import os
import pathlib

import pytest

WEIGHTS = pathlib.Path(__file__).with_name("weights")
UNKNOWN = 20.0  # a module not yet weighed


def weights():
    table = {}
    for line in WEIGHTS.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) == 2:
            table[fields[0]] = float(fields[1])
    return table


def split(modules, parts, table):
    """The part of each module: longest first, each to the lightest part so far."""
    load = [0.0] * parts
    where = {}
    for name in sorted(modules, key=lambda m: (-table.get(m, UNKNOWN), m)):
        part = min(range(parts), key=lambda p: (load[p], p))
        where[name] = part
        load[part] += table.get(name, UNKNOWN)
    return where


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    first = os.environ.get("EPHPORT_ANY_KERNEL", "1") != "0"
    shard = os.environ.get("EPHPORT_SHARD", "1/1")
    try:
        index, parts = (int(x) for x in shard.split("/"))
        assert 1 <= index <= parts
    except (ValueError, AssertionError):
        raise pytest.UsageError(f"EPHPORT_SHARD must be I/N with 1 <= I <= N, not {shard!r}")
    # before -m and -k take theirs: the split must not depend on them; it leaves out what no
    # VM of this kernel runs (host_only; any_kernel but on one kernel)
    def runs_here(item):
        return item.get_closest_marker("host_only") is None and (
            first or item.get_closest_marker("any_kernel") is None)

    def module(item):
        return pathlib.Path(str(item.fspath)).stem

    where = split({module(item) for item in items if runs_here(item)}, parts, weights())
    for item in items:
        ok = runs_here(item) and where.get(module(item)) == index - 1
        (keep if ok else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
