"""Traces are off unless otel.endpoint is set; then the pod gets the standard OTEL_* variables,
each pod naming itself through the downward API (POD_NAME, declared before it is referenced)."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from conftest import CHART, HELM, NAMESPACE, RELEASE, main_container, the_statefulset


def rendered_env(*sets: str) -> list[dict]:
    cmd = [HELM, "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    docs = tuple(d for d in yaml.safe_load_all(out) if d)
    return main_container(the_statefulset(docs))["env"]


def names(env: list[dict]) -> list[str]:
    return [e["name"] for e in env]


def test_no_endpoint_means_no_otel_variables():
    assert not [n for n in names(rendered_env()) if n.startswith("OTEL_")]


def test_an_endpoint_sets_the_standard_variables_with_the_pod_name():
    env = rendered_env("otel.endpoint=http://collector.observability:4318",
                       "otel.resourceAttributes=deployment.environment=lab")
    values = {e["name"]: e.get("value") for e in env}
    assert values["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.observability:4318"
    assert values["OTEL_SERVICE_NAME"] == RELEASE
    attributes = values["OTEL_RESOURCE_ATTRIBUTES"].split(",")
    assert "service.instance.id=$(POD_NAME)" in attributes
    assert f"k8s.namespace.name={NAMESPACE}" in attributes
    assert attributes[-1] == "deployment.environment=lab"
    order = names(env)
    assert order.index("POD_NAME") < order.index("OTEL_RESOURCE_ATTRIBUTES"), \
        "Kubernetes expands $(POD_NAME) only from variables declared earlier"


@pytest.mark.parametrize("value", ["otel.endpoint=collector:4318", "otel.resourceAttributes=novalue"])
def test_the_schema_refuses_malformed_values(value):
    result = subprocess.run([HELM, "template", RELEASE, str(CHART), "--set", value],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "otel" in result.stderr, result.stderr
