# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""What the tests of deploy/ share: paths, tools, and the manifests as kustomize renders
them."""
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
PROM = DEPLOY / "prometheus"
HERE = pathlib.Path(__file__).resolve().parent

VARIANTS = {"base": K8S / "base", "guard": K8S / "overlays" / "guard"}
# the capabilities the DaemonSet adds, each explained in daemonset.yaml and docs/kubernetes.md
CAPS = ["BPF", "PERFMON", "SYS_ADMIN", "SYS_PTRACE", "SYSLOG"]
# the events an alerting system gets from the log pipeline snippets
ALERT_EVENTS = {"pressure", "connect_failed", "bind_failed", "connect_denied", "nat_pressure"}

PACKAGES = {"kubectl": "kubectl", "node": "nodejs", "npm": "nodejs (with npm)",
            "promtool": "prometheus", "yamllint": "yamllint"}


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed (Debian package {PACKAGES[name]}; "
                    f"'make test' installs it)")
    return path


def run(*args, check=True, **kw):
    res = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {res.returncode}:\n"
                    f"{res.stdout}{res.stderr}")
    return res


def render(variant):
    out = run(tool("kubectl"), "kustomize", VARIANTS[variant]).stdout
    return out, [d for d in yaml.safe_load_all(out) if d]


def objects(variant):
    return {(d["kind"], d["metadata"]["name"]): d for d in render(variant)[1]}


def container(objs):
    ds = objs[("DaemonSet", "ephport")]
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    return ds, ds["spec"]["template"]["spec"], c


def expanded_args(objs, node="node-x", settings=None):
    """args as the kubelet expands $(VAR): NODE_NAME from the downward API, the rest
    from the ConfigMap (with settings changed as a user would change them)"""
    _, _, c = container(objs)
    data = dict(objs[("ConfigMap", "ephport")]["data"], **(settings or {}))
    env = {}
    for e in c["env"]:
        src = e["valueFrom"]
        if "fieldRef" in src:
            assert src["fieldRef"]["fieldPath"] == "spec.nodeName", e
            env[e["name"]] = node
        else:
            ref = src["configMapKeyRef"]
            assert ref["name"] == "ephport" and ref["key"] in data, e
            env[e["name"]] = data[ref["key"]]

    def expand(a):
        for name in re.findall(r"\$\(([A-Z_]+)\)", a):
            assert name in env, f"{a}: ${name} is not in the container's env"
        return re.sub(r"\$\(([A-Z_]+)\)", lambda m: env[m.group(1)], a)

    return [expand(a) for a in c["args"]]
