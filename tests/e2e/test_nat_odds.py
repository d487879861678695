# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""bench/nat_odds's model of the kernel's source NAT port search holds on this kernel:
bench/nat_odds_kernel fills a 1,000-port UDP masquerade range in namespaces it makes, sends
new flows one at a time and compares the failures with the model's prediction for the ports
the router held (docs/nat.md, "Thresholds")."""
import json
import math
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

ODDS_KERNEL = os.path.join(ROOT, "bench", "nat_odds_kernel")


# the search it models is the same code in 5.10, 6.1, 6.12 and 6.18 (docs/nat.md, "Kernel
# versions"); filling ranges with real flows took minutes of each make vmtest guest
@pytest.mark.host_only
def test_model_matches_kernel():
    for tool in ("nft", "conntrack"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    out = subprocess.run(["/usr/bin/python3", ODDS_KERNEL, "--utils", "0.95,0.99",
                          "--attempts", "400", "--json"], check=True, capture_output=True,
                         text=True, timeout=300).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2
    for r in rows:
        # every failure is a drop conntrack counted: nothing else lost the datagrams
        assert r["failed"] == r["insert_failed"], r
        p, n = r["predicted"], r["attempts"]
        sd = math.sqrt(n * p * (1 - p))
        assert abs(r["failed"] - n * p) <= 4 * sd + 3, r
    # the kernel fails flows before the range is full, as the model says
    assert rows[1]["failed"] > 0
