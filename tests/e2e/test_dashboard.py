# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""deploy/grafana/ephport.json: the dashboard is what Grafana's own schema describes (the
Dashboard type of the @grafana/schema package, checked by the TypeScript compiler with
the schema's enums as the strings JSON holds), every PromQL expression in it parses
(promtool), and every metric it asks for is one a live agent serves: an agent with the
guard, spreading and a source NAT router, scraped."""
import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT, eventually, run
from test_guard import cgroups  # noqa: F401  (a fixture)
from test_metrics import get
from test_nat import make_topology  # noqa: F401  (a fixture)

sys.path.insert(0, str(ROOT) + "/tests/deploy")
from manifests import HERE as DEPLOY_TESTS, tool  # noqa: E402

# the dashboard is the same whatever the kernel: the host runs it, make vmtest does not
pytestmark = pytest.mark.host_only

DASHBOARD = ROOT + "/deploy/grafana/ephport.json"
BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled"

# the schema's enums (ThresholdsMode, MappingType...) as the strings a JSON file holds
CHECK_TS = """import type { Dashboard } from '@grafana/schema';
type Json<T> = T extends string ? `${T}` : T extends Array<infer U> ? Array<Json<U>>
  : T extends object ? { [K in keyof T]: Json<T[K]> } : T;
export const dashboard: Json<Dashboard> = %s;
"""


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def exprs():
    """(panel title, PromQL) of every target, the template variables as Grafana fills them
    in for "All"."""
    out = []
    for p in dashboard()["panels"]:
        for t in p.get("targets", []):
            e = t["expr"].replace("$__rate_interval", "5m")
            out.append((p["title"], re.sub(r"\$(node|netns)\b", ".*", e)))
    return out


@pytest.fixture(scope="module")
def node_modules():
    tool("node")
    if not (DEPLOY_TESTS / "node_modules" / "@grafana" / "schema").is_dir():
        run(tool("npm"), "ci", "--no-audit", "--no-fund", cwd=DEPLOY_TESTS)
    return DEPLOY_TESTS / "node_modules"


def typecheck(node_modules, text):
    """tsc's complaints about a dashboard's JSON text ([] when it is a Dashboard)"""
    work = node_modules / ".cache" / "ephport"
    work.mkdir(parents=True, exist_ok=True)
    src = work / "dashboard.ts"
    src.write_text(CHECK_TS % text)
    r = subprocess.run([str(node_modules / ".bin" / "tsc"), "--noEmit", "--strict",
                        "--target", "es2022", "--module", "esnext", "--moduleResolution",
                        "bundler", str(src)], capture_output=True, text=True)
    return [line for line in r.stdout.splitlines() if "error TS" in line]


def test_the_dashboard_is_grafanas_schema(node_modules):
    with open(DASHBOARD) as f:
        assert typecheck(node_modules, f.read()) == []
    # and the check can fail: a panel with a field the schema does not have
    bad = dashboard()
    bad["panels"][1]["gridPos"]["h"] = "8"
    assert typecheck(node_modules, json.dumps(bad)) != []


def test_its_rows_panels_and_variables():
    d = dashboard()
    assert [v["name"] for v in d["templating"]["list"]] == ["datasource", "node", "netns"]
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == ["Nodes", "Namespaces (a pod is one network namespace)", "Tuples",
                    "Source NAT", "The agent"]
    for p in d["panels"]:
        if p["type"] != "row":
            assert p["targets"] and p["description"], p["title"]
            assert all('node=~"$node"' in t["expr"] for t in p["targets"]), p["title"]
    # no two panels overlap on the 24-column grid
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, p["title"]
        cells |= mine


def test_every_expression_parses(tmp_path):
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": e} for i, (_, e) in enumerate(exprs())]}]}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))  # JSON is YAML
    r = subprocess.run([tool("promtool"), "check", "rules", str(path)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(exprs())} rules found" in r.stdout


def test_every_metric_is_one_the_agent_serves(make_agent, make_topology, cgroups):  # noqa: F811
    """An agent with what each family needs: tuples, the guard and --spread, a namespace
    with source NAT, BPF statistics on."""
    asked = {m for _, e in exprs() for m in re.findall(r"\b(ephport_[a-z_]+)\b", e)}
    assert len(asked) >= 20
    t = make_topology((40000, 40099))
    with open(BPF_STATS) as f:
        stats_before = f.read().strip()
    try:
        with open(BPF_STATS, "w") as f:
            f.write("1")
        agent = make_agent("--interval", "1", "--metrics-addr", "127.0.0.1:0", "--guard",
                           "--cgroup-root", cgroups["root"], "--spread", "127.0.0.1")
        t.start_server(8080)
        held = t.connect(8080, 5)  # noqa: F841  (held open while scraped)
        url = agent.start_event["settings"]["metrics"]["url"]

        def served():
            status, _, body = get(url)
            assert status == 200
            names = set(re.findall(r"^# TYPE (\S+) ", body, re.M))
            missing = sorted(asked - names)
            assert not missing, f"not served: {missing}"
        eventually(served, timeout=20)
    finally:
        with open(BPF_STATS, "w") as f:
            f.write(stats_before)
