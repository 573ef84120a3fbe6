"""The chart's fault injection switch: off by default, and when on the pod gets FAULT_INJECTION and
the install notes warn. The schema says it must never be on in production."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

import chart


def install_dry_run(*sets: str) -> tuple[list[dict], str]:
    """(manifests, NOTES.txt) of `helm install --dry-run=client` with the given --set values."""
    cmd = [chart.helm(), "install", "--dry-run=client", chart.RELEASE, str(chart.CHART)]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    manifest, _, notes = out.partition("NOTES:")
    docs = [d for d in yaml.safe_load_all(manifest.split("MANIFEST:", 1)[1]) if d]
    return docs, notes


@pytest.mark.parametrize("enabled", [False, True])
def test_fault_injection_sets_the_env_and_warns_only_when_enabled(enabled):
    docs, notes = install_dry_run(*(["faultInjection.enabled=true"] if enabled else []))
    env = chart.pod_environment([d for d in docs if "helm.sh/hook" not in
                                 (d["metadata"].get("annotations") or {})])
    assert env.get("FAULT_INJECTION") == ("true" if enabled else None)
    assert ("FAULT INJECTION is ON" in notes) == enabled
    assert ("NEVER in production" in notes) == enabled


def test_the_schema_says_never_in_production():
    schema = json.loads((chart.CHART / "values.schema.json").read_text())
    prop = schema["properties"]["faultInjection"]
    assert "never" in prop["description"].lower() and "production" in prop["description"]
    assert yaml.safe_load((chart.CHART / "values.yaml").read_text())["faultInjection"]["enabled"] is False
