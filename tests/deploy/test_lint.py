"""Every source lints and renders: helm lint --strict, helm template, kubectl kustomize, yamllint,
and the JSON files are JSON."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import (CHART, HELM, K8S, NAMESPACE, ROOT, SCENARIOS, SOURCES, render, render_text,
                      rendered_file_name, scenario_values)

YAMLLINT_CONFIG = ROOT / "tests" / "deploy" / "yamllint.yaml"
YAML_SOURCES = [CHART / "values.yaml", CHART / "Chart.yaml", CHART / "ci", K8S,
                ROOT / "tests" / "deploy" / "checkov.yaml", YAMLLINT_CONFIG]
JSON_FILES = [CHART / "values.schema.json", CHART / "dashboards" / "moscow-time.json", K8S / "config.json"]


def yamllint(*paths) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "yamllint", "-c", str(YAMLLINT_CONFIG), *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict_passes(scenario):
    cmd = [HELM, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, "-f", str(scenario_values(scenario))]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("source", SOURCES)
def test_the_source_renders(source):
    try:
        assert render(source), f"{source} rendered no manifest"
    except subprocess.CalledProcessError as e:
        pytest.fail(f"{' '.join(e.cmd)} failed:\n{e.stderr}")


@pytest.mark.parametrize("source", SOURCES)
def test_yamllint_passes_on_the_render(source, tmp_path):
    manifest = tmp_path / rendered_file_name(source)
    manifest.write_text(render_text(source))
    result = yamllint(manifest)
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_passes_on_the_yaml_sources():
    result = yamllint(*YAML_SOURCES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_json_file_is_valid_json(path):
    json.loads(path.read_text())
