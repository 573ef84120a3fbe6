"""The chart's metadata and documentation stay in step with values.yaml and its schema."""
from __future__ import annotations

import json

import yaml

from chart_params import CHART, lookup, params, readme_with_tables

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
    assert readme_with_tables(text) == text, "run: python3 tests/deploy/chart_params.py --write"


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


def test_chart_yaml_declares_the_versions():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["version"] == "0.1.0"
    assert chart["appVersion"] == "0.1.0" and chart["kubeVersion"] == ">=1.25.0-0"
    assert VALUES["image"] == {"repository": "moscow-time", "tag": "", "digest": "", "pullPolicy": "IfNotPresent"}


def test_the_chart_has_the_scenarios_the_issue_asks_for():
    names = {p.name for p in (CHART / "ci").glob("*-values.yaml")}
    assert {"default-values.yaml", "persistence-off-values.yaml", "monitoring-values.yaml",
            "hardened-values.yaml", "ondelete-values.yaml"} <= names
    assert (CHART / ".helmignore").exists() and (CHART / "templates" / "tests").is_dir()
