"""What the chart declares for monitoring, read from its render: the scrape settings of the
ServiceMonitor (and the scrape annotations, which must agree), the PrometheusRule's groups and the
pod's environment and config file.

Nothing here is written by hand to match the chart: a changed path, port, interval or rule in the
chart changes what the live test's Prometheus does.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "moscow-time"
DASHBOARDS = CHART / "dashboards"
RELEASE = "moscow-time"
NAMESPACE = "moscow-time"
# The test's values: the chart's monitoring objects on, with short intervals, `for:` and windows.
TEST_VALUES = Path(__file__).resolve().parent / "values.yaml"


def helm() -> str:
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    local = ROOT / ".tools" / "bin" / "helm"
    return str(local) if local.exists() else "helm"


def render(container_port: int) -> list[dict]:
    """The chart rendered with the test's values and the given container port."""
    cmd = [helm(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
           "-f", str(TEST_VALUES), "--set", f"containerPorts.http={container_port}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d and "helm.sh/hook" not in
            (d.get("metadata", {}).get("annotations") or {})]


def one(docs: list[dict], kind: str, **where) -> dict:
    found = [d for d in docs if d["kind"] == kind and all(
        d.get("metadata", {}).get(k) == v for k, v in where.items())]
    assert len(found) == 1, f"expected one {kind} {where or ''}, rendered {len(found)}"
    return found[0]


def main_container(docs: list[dict]) -> dict:
    spec = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "moscow-time")


def pod_annotations(docs: list[dict]) -> dict:
    return one(docs, "StatefulSet")["spec"]["template"]["metadata"].get("annotations") or {}


@dataclass(frozen=True)
class Scrape:
    """How Prometheus scrapes each pod: what a ServiceMonitor endpoint resolves to."""
    path: str
    port: int
    port_name: str
    interval: str
    timeout: str
    honor_labels: bool
    service: str


def _selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        present = e["key"] in labels
        if e["operator"] == "DoesNotExist" and present or e["operator"] == "Exists" and not present:
            return False
        if e["operator"] in ("In", "NotIn") and (labels.get(e["key"]) in e["values"]) != (e["operator"] == "In"):
            return False
    return True


def _container_port(docs: list[dict], target) -> int:
    if isinstance(target, int):
        return target
    ports = [p for p in main_container(docs).get("ports", []) if p.get("name") == target]
    assert ports, f"the Service's targetPort {target!r} names no container port"
    return ports[0]["containerPort"]


def scrape_from_service_monitor(docs: list[dict]) -> Scrape:
    """Resolve the ServiceMonitor as prometheus-operator does: its selector picks the Service, the
    endpoint's port name picks the Service port, whose targetPort picks the container port."""
    monitor = one(docs, "ServiceMonitor")
    endpoints = monitor["spec"]["endpoints"]
    assert len(endpoints) == 1, "the harness translates one ServiceMonitor endpoint"
    ep = endpoints[0]
    for unsupported in ("relabelings", "metricRelabelings", "params", "scheme", "tlsConfig"):
        assert unsupported not in ep, f"the harness does not translate {unsupported}: add it"
    services = [s for s in docs if s["kind"] == "Service"
                and _selects(monitor["spec"]["selector"], s["metadata"].get("labels") or {})]
    assert len(services) == 1, f"the ServiceMonitor selects {len(services)} Services, want 1 (each pod once)"
    service = services[0]
    ports = [p for p in service["spec"]["ports"] if p.get("name") == ep["port"]]
    assert ports, f"the ServiceMonitor's port {ep['port']!r} is not a port of Service {service['metadata']['name']}"
    return Scrape(
        path=ep.get("path", "/metrics"),
        port=_container_port(docs, ports[0].get("targetPort", ports[0]["port"])),
        port_name=ep["port"],
        interval=ep["interval"],
        timeout=ep.get("scrapeTimeout", ep["interval"]),
        honor_labels=bool(ep.get("honorLabels", False)),
        service=service["metadata"]["name"],
    )


def scrape_from_annotations(docs: list[dict]) -> tuple[str, int]:
    """(path, port) from the `prometheus.io/*` pod annotations."""
    a = pod_annotations(docs)
    assert a.get("prometheus.io/scrape") == "true", "the pods carry no prometheus.io/scrape annotation"
    return a.get("prometheus.io/path", "/metrics"), int(a["prometheus.io/port"])


def rule_groups(docs: list[dict]) -> list[dict]:
    """The PrometheusRule's groups: exactly what a Prometheus rule file holds."""
    return one(docs, "PrometheusRule")["spec"]["groups"]


def alert_rules(docs: list[dict]) -> dict[str, dict]:
    return {r["alert"]: r for g in rule_groups(docs) for r in g["rules"] if "alert" in r}


def pod_environment(docs: list[dict]) -> dict[str, str]:
    """The container's literal environment variables (those with a `value`)."""
    return {e["name"]: e["value"] for e in main_container(docs).get("env", []) if "value" in e}


def config_file(docs: list[dict]) -> tuple[str, str]:
    """(file name, text) of the JSON config the pod sees at CONFIG_FILE: the chart serves its pod
    template's annotation there through a downward API volume."""
    path = Path(pod_environment(docs)["CONFIG_FILE"])
    template = one(docs, "StatefulSet")["spec"]["template"]
    volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
    for mount in main_container(docs).get("volumeMounts", []):
        source = volumes.get(mount["name"], {}).get("downwardAPI")
        if source and Path(mount["mountPath"]) == path.parent:
            items = {i["path"]: i["fieldRef"]["fieldPath"] for i in source["items"]}
            assert path.name in items, f"the downward API volume has no {path.name}"
            annotation = items[path.name].removeprefix("metadata.annotations['").removesuffix("']")
            return path.name, template["metadata"]["annotations"][annotation]
    raise AssertionError(f"CONFIG_FILE {path} is not in a mounted downward API volume")
