"""checkov finds nothing in the rendered manifests or in the chart.

Every skipped checkov rule is in checkov.yaml with its reason. CHECKOV=0 skips the scans (they take
the longest of the deploy checks); CI never sets it. The report judging is tested on its own with
reports that must fail.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import CHART, HELM, ROOT, venv_tool
from validators import checkov_findings

CONFIG = ROOT / "tests" / "deploy" / "checkov.yaml"
# checkov's helm framework renders with release name and namespace "default", so CKV_K8S_21 ("the
# default namespace should not be used") is an artefact of that scan; the real renders (-n
# moscow-time, every object carries metadata.namespace) are scanned with it.
HELM_ONLY_SKIPS = ["CKV_K8S_21"]

scans = pytest.mark.skipif(os.environ.get("CHECKOV") == "0", reason="CHECKOV=0")


def checkov(framework: str, folder: Path, config: Path) -> dict | list:
    cmd = [venv_tool("checkov"), "--config-file", str(config), "--framework", framework,
           "-d", str(folder), "-o", "json"]
    # The helm framework runs helm from PATH: the pinned one.
    env = dict(os.environ, PATH=f"{Path(HELM).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON report (exit {result.returncode}):\n{result.stderr[-3000:]}")


@scans
def test_checkov_passes_on_every_render(rendered_dir):
    assert checkov_findings(checkov("kubernetes", rendered_dir, CONFIG)) == []


@scans
def test_checkov_passes_on_the_chart(tmp_path):
    settings = yaml.safe_load(CONFIG.read_text())
    settings["skip-check"] += HELM_ONLY_SKIPS
    config = tmp_path / "checkov-helm.yaml"
    config.write_text(yaml.safe_dump(settings))
    assert checkov_findings(checkov("helm", CHART, config)) == []


def report(passed=0, failed_checks=(), parsing_errors=0) -> dict:
    return {"summary": {"passed": passed, "failed": len(failed_checks), "parsing_errors": parsing_errors},
            "results": {"failed_checks": list(failed_checks)}}


FAILED_CHECK = {"check_id": "CKV_K8S_16", "check_name": "Container should not be privileged",
                "resource": "StatefulSet.moscow-time", "file_path": "/chart-default.yaml"}


def test_a_clean_report_has_no_findings():
    assert checkov_findings([report(passed=40), report(passed=3)]) == []


@pytest.mark.parametrize("bad, finding", [
    pytest.param(report(passed=40, failed_checks=[FAILED_CHECK]), "CKV_K8S_16", id="a-failed-check"),
    pytest.param(report(passed=40, parsing_errors=1), "parsing errors", id="a-parsing-error"),
    pytest.param(report(), "ran no check", id="a-scan-that-ran-no-check"),
])
def test_a_bad_report_has_findings(bad, finding):
    assert any(finding in f for f in checkov_findings(bad)), checkov_findings(bad)
