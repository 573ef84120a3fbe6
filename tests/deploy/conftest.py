"""Shared helpers for the deployment tests: render every chart scenario and k8s/ once.

The tools come from .tools/ (scripts/install-tools): helm and kubectl from .tools/bin unless HELM
or KUBECTL name others, the Python checkers from the tool environment running these tests.
"""
from __future__ import annotations

import functools
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared helpers: tests/pyhelpers
from pyhelpers.tools import CHART, HELM, K8S, KUBECTL, ROOT  # noqa: E402
RELEASE = "moscow-time"
NAMESPACE = "moscow-time"
SCENARIOS = sorted(p.name[: -len("-values.yaml")] for p in (CHART / "ci").glob("*-values.yaml"))
SOURCES = [f"chart:{s}" for s in SCENARIOS] + ["k8s"]
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# The Kubernetes versions whose schemas every render must pass (the oldest is Chart.yaml's kubeVersion).
KUBE_VERSIONS = os.environ.get("KUBE_VERSIONS", "1.27.0 1.35.0 1.37.0").split()
VERSION_LABELS = ("app.kubernetes.io/version", "helm.sh/chart")


def venv_tool(name: str) -> str:
    """A command of the Python tool environment running the tests (yamllint, checkov, ...)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def scenario_values(scenario: str) -> Path:
    return CHART / "ci" / f"{scenario}-values.yaml"


@functools.cache
def render_text(source: str) -> str:
    """Render a source ("chart:<scenario>" or "k8s") to its YAML text, as helm or kubectl print it."""
    if source == "k8s":
        cmd = [KUBECTL, "kustomize", str(K8S)]
    else:
        scenario = source.split(":", 1)[1]
        cmd = [HELM, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
               "-f", str(scenario_values(scenario))]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout


@functools.cache
def render(source: str) -> tuple[dict, ...]:
    """Render a source ("chart:<scenario>" or "k8s") to a tuple of manifests."""
    return tuple(d for d in yaml.safe_load_all(render_text(source)) if d)


def rendered_file_name(source: str) -> str:
    """chart-<scenario>.yaml or k8s.yaml: the name a source's render is saved under."""
    return source.replace(":", "-") + ".yaml"


def is_helm_test(doc: dict) -> bool:
    return "helm.sh/hook" in (doc.get("metadata", {}).get("annotations") or {})


def workloads(docs) -> list[dict]:
    return [d for d in docs if d["kind"] == "StatefulSet"]


def the_statefulset(docs) -> dict:
    sts = workloads(docs)
    assert len(sts) == 1, f"expected one StatefulSet, got {len(sts)}"
    return sts[0]


def by_kind(docs, kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and not is_helm_test(d)]


def main_container(sts: dict) -> dict:
    containers = sts["spec"]["template"]["spec"]["containers"]
    named = [c for c in containers if c["name"] == "moscow-time"]
    assert named, "no container named moscow-time"
    return named[0]


def env_value(container: dict, name: str) -> str | None:
    for e in container.get("env", []):
        if e["name"] == name:
            return e.get("value")
    return None


def config_json(docs, sts: dict) -> tuple[str, dict, str]:
    """(mount path of the config file, parsed JSON, raw text) as the pod would see them: from a
    ConfigMap (k8s/) or from a downward API volume serving a pod annotation (the chart)."""
    c = main_container(sts)
    path = env_value(c, "CONFIG_FILE")
    assert path, "env CONFIG_FILE is not set"
    template = sts["spec"]["template"]
    vols = {v["name"]: v for v in template["spec"].get("volumes", [])}
    for m in c.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if not path.startswith(mp + "/"):
            continue
        key = path[len(mp) + 1:]
        volume = vols.get(m["name"], {})
        if "configMap" in volume:
            cm_name = volume["configMap"]["name"]
            cms = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm_name]
            assert cms, f"ConfigMap {cm_name} mounted for CONFIG_FILE is not rendered"
            raw = cms[0]["data"][key]
            return path, json.loads(raw), raw
        if "downwardAPI" in volume:
            raw = downward_file(template, volume, key)
            return path, json.loads(raw), raw
    raise AssertionError(f"CONFIG_FILE {path} is not inside a mounted ConfigMap or downward API volume")


def downward_file(template: dict, volume: dict, key: str) -> str:
    """The text of file `key` of a downward API volume that serves a pod annotation."""
    items = [i for i in volume["downwardAPI"]["items"] if i["path"] == key]
    assert items, f"the downward API volume has no {key}"
    field = items[0]["fieldRef"]["fieldPath"]
    m = re.fullmatch(r"metadata\.annotations\['([^']+)'\]", field)
    assert m, f"{key} comes from {field}, not from a pod annotation"
    annotations = template["metadata"].get("annotations", {})
    assert m.group(1) in annotations, f"the pod template has no annotation {m.group(1)}"
    return annotations[m.group(1)]


@pytest.fixture(params=SOURCES)
def source(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def rendered_dir(tmp_path_factory) -> Path:
    """A folder with every source's render saved as a file (see rendered_file_name)."""
    folder = tmp_path_factory.mktemp("rendered")
    for s in SOURCES:
        (folder / rendered_file_name(s)).write_text(render_text(s))
    return folder


@pytest.fixture
def docs(source) -> tuple[dict, ...]:
    return render(source)
