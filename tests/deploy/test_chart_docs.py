"""The chart's metadata and documentation stay in step with values.yaml and its schema."""
from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from importlib.machinery import SourceFileLoader

import yaml

from conftest import CHART, ROOT


def load_script(path):
    """Import a Python script that has no .py suffix (scripts/chart-params) as a module."""
    loader = SourceFileLoader(path.name.replace("-", "_"), str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


chart_params = load_script(ROOT / "scripts" / "chart-params")
lookup, params, readme_with_tables = chart_params.lookup, chart_params.params, chart_params.readme_with_tables

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def leaves(d: dict, prefix: str = ""):
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from leaves(v, path + ".")
        else:
            yield path


def test_every_value_is_documented_by_a_param_line():
    documented = [key for _, rows in params() for key, _ in rows]
    for key in documented:
        lookup(VALUES, key)  # a documented key must exist
    for leaf in leaves(VALUES):
        assert any(leaf == d or leaf.startswith(d + ".") for d in documented), f"{leaf} has no ## @param"


def test_the_readme_parameter_table_is_current():
    text = (CHART / "README.md").read_text()
    assert readme_with_tables(text) == text, "run: .tools/venv/bin/python scripts/chart-params --write"


def test_the_schema_is_draft_07_and_closed_at_every_level_it_defines():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["additionalProperties"] is False
    assert set(VALUES) <= set(SCHEMA["properties"])

    def walk(node, where):
        if isinstance(node, dict):
            if "properties" in node and "Kubernetes" not in node.get("$comment", ""):
                assert node.get("additionalProperties") is False, f"{where} is open"
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")
    walk(SCHEMA, "#")


SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


def crate_version() -> str:
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    version = cargo["package"]["version"]
    return cargo["workspace"]["package"]["version"] if version == {"workspace": True} else version


def test_chart_yaml_declares_the_versions():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert SEMVER.fullmatch(str(chart["version"])), f"chart version {chart['version']!r} is not SemVer"
    assert chart["appVersion"] == crate_version(), "appVersion (the default image tag) is not the crate's version"
    assert chart["kubeVersion"] == ">=1.27.0-0"
    assert VALUES["image"] == {"registry": "", "repository": "moscow-time", "tag": "", "digest": "",
                               "pullPolicy": "IfNotPresent"}


def test_the_chart_has_its_ci_scenarios_and_helm_tests():
    names = {p.name for p in (CHART / "ci").glob("*-values.yaml")}
    assert {"default-values.yaml", "persistence-off-values.yaml", "monitoring-values.yaml",
            "hardened-values.yaml", "ondelete-values.yaml"} <= names
    assert (CHART / ".helmignore").exists() and (CHART / "templates" / "tests").is_dir()
