# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Offline checks of deploy/: the Kubernetes manifests, the Prometheus rules and scrape
configuration, and the Fluent Bit and Vector snippets.

Tools: kubectl (kustomize), node + npm (kubernetes-models, yaml: tests/deploy/package.json),
promtool (Debian: prometheus), yamllint. `make test` installs them; a missing one fails
with the package to install, it never skips. test_pod.py runs the agent itself as the
DaemonSet's container would run.
"""
import copy
import fnmatch
import json
import re
import shutil
from datetime import datetime

import pytest
import yaml

from manifests import (ALERT_EVENTS, CAPS, DEPLOY, HERE, PROM, ROOT, VARIANTS, container,
                       expanded_args, objects, render, run, tool)


@pytest.fixture(scope="session")
def node_modules():
    """tests/deploy/node_modules from package-lock.json (npm ci), once"""
    tool("node")
    if not (HERE / "node_modules" / "kubernetes-models").is_dir():
        run(tool("npm"), "ci", "--no-audit", "--no-fund", cwd=HERE)
    return HERE / "node_modules"


def doc_events():
    """every example line of docs/events.md, by event name"""
    text = (ROOT / "docs" / "events.md").read_text()
    lines = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", text, re.S)]
    return {line["event"]: line for line in lines}


# --- Kubernetes -------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomize_renders_every_object(variant):
    objs = objects(variant)
    assert set(objs) == {("Namespace", "ephport"), ("ServiceAccount", "ephport"),
                         ("ConfigMap", "ephport"), ("DaemonSet", "ephport"),
                         ("Service", "ephport"), ("NetworkPolicy", "ephport")}
    for (kind, _), obj in objs.items():
        if kind != "Namespace":
            assert obj["metadata"]["namespace"] == "ephport", kind


@pytest.mark.parametrize("variant", VARIANTS)
def test_objects_match_kubernetes_schemas(variant, node_modules):
    out, _ = render(variant)
    res = run(tool("node"), HERE / "validate.mjs", "-", input=out, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "ok: 6 objects"


def test_schema_check_finds_mistakes(node_modules):
    """the validator fails on a misspelt field, a wrong enum value and a wrong type"""
    out, _ = render("base")
    bad = (out.replace("readOnlyRootFilesystem:", "readOnlyRootFilesytem:")
           .replace("imagePullPolicy: IfNotPresent", "imagePullPolicy: Sometimes")
           .replace("containerPort: 9979", "containerPort: nine"))
    assert bad != out
    res = run(tool("node"), HERE / "validate.mjs", "-", input=bad, check=False)
    assert res.returncode == 1
    assert 'unknown field "readOnlyRootFilesytem"' in res.stdout
    assert "/imagePullPolicy: must be equal to one of the allowed values" in res.stdout
    assert "/containerPort: must be integer" in res.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_daemonset_least_privilege(variant):
    ds, pod, c = container(objects(variant))
    sc = c["securityContext"]
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsUser"] == 0
    assert sc["capabilities"]["drop"] == ["ALL"]
    # the guard needs nothing more: CAP_SYS_ADMIN covers cgroup/connect programs
    assert sorted(sc["capabilities"]["add"]) == sorted(CAPS)
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["appArmorProfile"] == {"type": "Unconfined"}
    assert "securityContext" not in pod or "privileged" not in pod["securityContext"]
    assert pod["hostPID"] is True
    assert pod["hostNetwork"] is False
    assert "hostIPC" not in pod
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "ephport"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["priorityClassName"] == "system-node-critical"
    assert c["image"] == "ephport:0.1.0" and c["imagePullPolicy"] == "IfNotPresent"
    ns = objects(variant)[("Namespace", "ephport")]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


@pytest.mark.parametrize("variant", VARIANTS)
def test_daemonset_mounts(variant):
    _, pod, c = container(objects(variant))
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    host = {}
    for path, m in mounts.items():
        v = volumes[m["name"]]
        assert "hostPath" in v, f"{path} is not a hostPath volume"
        host[path] = (v["hostPath"]["path"], m.get("readOnly", False))
    assert host == {
        "/sys/fs/bpf": ("/sys/fs/bpf", False),          # pins
        "/sys/kernel/tracing": ("/sys/kernel/tracing", True),
        "/sys/kernel/btf": ("/sys/kernel/btf", True),
        "/sys/fs/cgroup": ("/sys/fs/cgroup", True),     # the node's tree over the pod's
        "/run/netns": ("/run/netns", True),
        "/run/ephport": ("/run/ephport", False),        # the agent's lock
    }
    assert mounts["/run/netns"]["mountPropagation"] == "HostToContainer"
    assert all("mountPropagation" not in m for p, m in mounts.items() if p != "/run/netns")
    # hostPID shows the node's processes in the container's own /proc
    assert not any(v["hostPath"]["path"].startswith("/proc") for v in volumes.values())
    assert len(volumes) == len(mounts)


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_ports_and_service(variant):
    objs = objects(variant)
    ds, pod, c = container(objs)
    assert c["ports"] == [{"name": "metrics", "containerPort": 9979, "protocol": "TCP"}]
    for probe, path in (("startupProbe", "/readyz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        assert c[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe
    svc = objs[("Service", "ephport")]
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 9979,
                                     "targetPort": "metrics", "protocol": "TCP"}]
    assert svc["spec"]["clusterIP"] == "None"
    ann = svc["metadata"]["annotations"]
    assert ann == {"prometheus.io/scrape": "true", "prometheus.io/port": "9979",
                   "prometheus.io/path": "/metrics"}
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert ds["spec"]["selector"]["matchLabels"].items() <= labels.items()
    res = c["resources"]
    assert res["requests"] == {"cpu": "50m", "memory": "64Mi"}
    assert res["limits"] == {"cpu": "500m", "memory": "128Mi"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_network_policy_admits_only_the_scrape(variant):
    """ingress to the agent pods: their metrics port only, from Prometheus pods of one
    namespace (both selectors in one entry: both must match); no other rule"""
    objs = objects(variant)
    ds, _, c = container(objs)
    np = objs[("NetworkPolicy", "ephport")]["spec"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert np["podSelector"]["matchLabels"].items() <= labels.items()
    assert np["podSelector"]["matchLabels"] == ds["spec"]["selector"]["matchLabels"]
    assert np["policyTypes"] == ["Ingress"]
    (rule,) = np["ingress"]
    (port,) = c["ports"]
    assert rule["ports"] == [{"port": port["name"], "protocol": "TCP"}]
    (peer,) = rule["from"]
    assert peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


def test_args_base_and_guard():
    base = expanded_args(objects("base"))
    guard = expanded_args(objects("guard"))
    assert base == ["agent", "--metrics-addr", ":9979", "--host", "node-x",
                    "--interval", "10", "--warn-at", "0.80", "--critical-at", "0.95",
                    "--metrics-top", "100", "--max-tuples", "65536"]
    assert "--guard" not in base and "--audit" not in base
    assert guard == base + ["--guard", "--deny-at", "0.98", "--exempt-system"]


def test_args_are_agent_flags():
    """every flag the manifests pass is one 'ephport agent --help' lists"""
    binary = ROOT / "build" / "ephport"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run make")
    helptext = run(binary, "agent", "--help").stdout
    known = set(re.findall(r"--[a-z][a-z-]+", helptext))
    for variant in VARIANTS:
        flags = [a for a in expanded_args(objects(variant)) if a.startswith("--")]
        assert flags and set(flags) <= known, (variant, set(flags) - known)


def test_yamllint():
    config = DEPLOY / ".yamllint"
    res = run(tool("yamllint"), "--strict", "-c", config, DEPLOY, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_yamllint_finds_mistakes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a:  1\nb: [1,2]\nc: yes\n" + "d: " + "x" * 120 + "\n")
    res = run(tool("yamllint"), "--strict", "-c", DEPLOY / ".yamllint", bad, check=False)
    assert res.returncode == 1
    for rule in ("colons", "commas", "truthy", "line-length"):
        assert f"({rule})" in res.stdout, rule


# --- Prometheus -------------------------------------------------------------------------

def test_rules_check():
    res = run(tool("promtool"), "check", "rules", PROM / "ephport.rules.yml")
    assert "SUCCESS: 14 rules found" in res.stdout  # 13 alerts, ephport:netns_pod:info


def test_rules_unit_tests():
    res = run(tool("promtool"), "test", "rules", PROM / "ephport.rules.test.yml")
    assert "SUCCESS" in res.stdout


def test_rules_unit_tests_fail_on_a_broken_rule(tmp_path):
    """the unit tests notice a changed rule, and check rules a wrong expression"""
    rules = (PROM / "ephport.rules.yml").read_text()
    shutil.copy(PROM / "ephport.rules.test.yml", tmp_path)
    broken = rules.replace("ephport_tuple_pressure_level == 2",
                           "ephport_tuple_pressure_level >= 2")
    assert broken != rules
    (tmp_path / "ephport.rules.yml").write_text(broken)
    res = run(tool("promtool"), "test", "rules", tmp_path / "ephport.rules.test.yml",
              check=False)
    assert res.returncode != 0
    assert "alertname: EphportTuplePortsCritical" in res.stdout + res.stderr

    (tmp_path / "ephport.rules.yml").write_text(rules.replace("increase(", "increase((", 1))
    res = run(tool("promtool"), "check", "rules", tmp_path / "ephport.rules.yml",
              check=False)
    assert res.returncode != 0


TUPLE_ALERTS = {"EphportTuplePortsWarning", "EphportTuplePortsCritical",
                "EphportTuplePortsExhausted", "EphportGuardDenials"}


def test_every_alert_is_tested_firing_and_not():
    rules = yaml.safe_load((PROM / "ephport.rules.yml").read_text())
    tests = yaml.safe_load((PROM / "ephport.rules.test.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert len(alerts) == 13
    fires, quiet = set(), set()
    for t in tests["tests"]:
        for a in t.get("alert_rule_test", []):
            (fires if a["exp_alerts"] else quiet).add(a["alertname"])
    assert fires == alerts and quiet == alerts
    for g in rules["groups"]:
        for r in (r for r in g["rules"] if "alert" in r):
            assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
            assert {"summary", "description"} <= r["annotations"].keys(), r["alert"]
            if r["alert"] in TUPLE_ALERTS:
                for label in ("netns", "saddr", "daddr", "dport", "pod_uid"):
                    assert f"$labels.{label}" in r["annotations"]["description"], r["alert"]
                assert "group_left(pod_uid) ephport:netns_pod:info" in r["expr"], r["alert"]


def test_scrape_config(tmp_path):
    """promtool checks the configuration with the Kubernetes discovery replaced by a
    static target (Debian's promtool is built without kubernetes_sd_configs); the
    discovery and relabelling must select the rendered Service's port"""
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "ephport"  # what EphportAgentDown/Absent look for
    (sd,) = job["kubernetes_sd_configs"]
    assert sd == {"role": "endpoints", "namespaces": {"names": ["ephport"]}}
    svc = objects("base")[("Service", "ephport")]
    meta = {
        "__meta_kubernetes_service_name": svc["metadata"]["name"],
        "__meta_kubernetes_endpoint_port_name": svc["spec"]["ports"][0]["name"],
        "__meta_kubernetes_service_annotation_prometheus_io_scrape":
            svc["metadata"]["annotations"]["prometheus.io/scrape"],
        "__meta_kubernetes_pod_node_name": "node-x",
        "__meta_kubernetes_pod_name": "ephport-abcde",
    }
    labels = dict(meta)
    for rc in job["relabel_configs"]:
        value = ";".join(labels.get(s, "") for s in rc["source_labels"])
        matched = re.fullmatch(rc["regex"], value) if "regex" in rc else True
        if rc.get("action", "replace") == "keep":
            assert matched, f"the Service's target is dropped by {rc}"
        else:
            labels[rc["target_label"]] = value
    assert labels["node"] == "node-x" and labels["pod"] == "ephport-abcde"
    # another Service's port is not kept
    other = dict(meta, __meta_kubernetes_service_name="kube-dns")
    assert any(rc.get("action") == "keep" and not re.fullmatch(
        rc["regex"], ";".join(other.get(s, "") for s in rc["source_labels"]))
        for rc in job["relabel_configs"])

    static = copy.deepcopy(config)
    del static["scrape_configs"][0]["kubernetes_sd_configs"]
    static["scrape_configs"][0]["static_configs"] = [{"targets": ["127.0.0.1:9979"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(static))
    shutil.copy(PROM / "ephport.rules.yml", tmp_path)
    res = run(tool("promtool"), "check", "config", tmp_path / "prometheus.yml")
    assert "SUCCESS" in res.stdout + res.stderr


# --- log pipelines ----------------------------------------------------------------------

# the log file of the DaemonSet's pod: <pod>_<namespace>_<container>-<container id>.log
AGENT_LOG = "/var/log/containers/ephport-x7k2p_ephport_ephport-" + "a" * 64 + ".log"
OTHER_LOGS = ["/var/log/containers/ephport-x7k2p_default_app-" + "b" * 64 + ".log",
              "/var/log/containers/web-5d9c_ephport_web-" + "c" * 64 + ".log"]


def cri_lines():
    """the docs' example events as a container runtime writes them, plus a diagnostic
    on standard error"""
    lines = [f"2026-11-22T01:36:45.069123456Z stdout F {json.dumps(e)}"
             for e in doc_events().values()]
    lines.append("2026-11-22T01:36:45.1Z stderr F ephport: cannot read /proc/kallsyms")
    return lines


def test_docs_have_every_event():
    assert set(doc_events()) == {"agent_start", "tuple", "netns", "stats", "pressure",
                                 "connect_failed", "bind_failed", "connect_denied",
                                 "connect_spread", "nat_pressure", "agent_stop"}


def test_fluent_bit_routes_alert_events():
    conf = yaml.safe_load((DEPLOY / "logging" / "fluent-bit" / "ephport.yaml").read_text())
    (inp,) = conf["pipeline"]["inputs"]
    assert inp["name"] == "tail" and inp["multiline.parser"] == "cri"
    assert fnmatch.fnmatch(AGENT_LOG, inp["path"])
    assert not any(fnmatch.fnmatch(p, inp["path"]) for p in OTHER_LOGS)
    tag = inp["tag"]
    filters = {f["name"]: f for f in conf["pipeline"]["filters"]}
    assert [f["name"] for f in conf["pipeline"]["filters"]] == ["grep", "parser",
                                                                "rewrite_tag"]
    assert all(f["match"] == tag for f in filters.values())
    grep_key, grep_re = filters["grep"]["regex"].split(" ", 1)
    parser = {p["name"]: p for p in conf["parsers"]}[filters["parser"]["parser"]]
    assert parser["format"] == "json" and parser["time_key"] == "ts"
    key, regex, new_tag, keep = filters["rewrite_tag"]["rule"].split(" ")
    assert key == "$event" and keep == "true"
    outputs = {o["match"]: o for o in conf["pipeline"]["outputs"]}
    assert outputs[new_tag]["name"] == "http" and outputs[new_tag]["format"] == "json_lines"
    assert tag in outputs

    # the configured steps over the docs' examples: stream filter, JSON, rule
    routed, parsed = set(), 0
    for line in cri_lines():
        time, stream, _, log = line.split(" ", 3)
        if not re.search(grep_re, {"stream": stream}[grep_key]):
            continue
        event = json.loads(log)
        parsed += 1
        ts = event[parser["time_key"]]
        datetime.strptime(ts, parser["time_format"].replace("%L", "%f"))
        if re.search(regex, event[key[1:]]):
            routed.add(event["event"])
    assert parsed == len(doc_events())
    assert routed == ALERT_EVENTS


def test_vector_routes_alert_events():
    conf = yaml.safe_load((DEPLOY / "logging" / "vector" / "ephport.yaml").read_text())
    (src_id, src), = conf["sources"].items()
    assert src["type"] == "kubernetes_logs"
    ds, _, _ = container(objects("base"))
    assert src["extra_field_selector"] == f"metadata.namespace={ds['metadata']['namespace']}"
    key, value = src["extra_label_selector"].split("=")
    assert ds["spec"]["template"]["metadata"]["labels"][key] == value

    remap = conf["transforms"]["ephport_events"]
    assert remap["type"] == "remap" and remap["inputs"] == [src_id]
    assert 'if .stream != "stdout" { abort }' in remap["source"]
    assert "parse_json!(string!(.message))" in remap["source"]
    assert remap["drop_on_error"] is True and remap["drop_on_abort"] is True

    route = conf["transforms"]["ephport_route"]
    assert route["type"] == "route" and route["inputs"] == ["ephport_events"]
    m = re.fullmatch(r"includes\(\[(.*)\], \.event\)", route["route"]["alerts"])
    assert m, route["route"]["alerts"]
    names = set(json.loads(f"[{m.group(1)}]"))
    assert names == ALERT_EVENTS
    assert {e for e in doc_events() if e in names} == ALERT_EVENTS

    # every input names a component (or a route's output) that exists
    ids = set(conf["sources"]) | set(conf["transforms"])
    ids |= {f"{t}.{r}" for t, c in conf["transforms"].items() if c["type"] == "route"
            for r in c["route"]}
    for section in ("transforms", "sinks"):
        for name, comp in conf[section].items():
            assert set(comp["inputs"]) <= ids, name
    assert conf["sinks"]["ephport_alerts"]["inputs"] == ["ephport_route.alerts"]
    assert conf["sinks"]["ephport_alerts"]["type"] == "http"
