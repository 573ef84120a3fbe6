"""The shipped Grafana dashboards' queries, with their template variables filled in as Grafana
would, run against a live Prometheus."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from live import Prometheus, QueryError, is_finite

VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
LABEL_VALUES = re.compile(r"^\s*label_values\((?:(.*),\s*)?(\w+)\)\s*$")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    expr: str


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def panels(dashboard: dict):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panels(panel)  # rows nest their panels


def queries(path: Path) -> list[Query]:
    dashboard = load(path)
    return [Query(path.name, p.get("title", "?"), t["expr"])
            for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]


def variables(dashboard: dict) -> list[dict]:
    return dashboard.get("templating", {}).get("list", [])


def fill(expr: str, values: dict[str, str], builtins: dict[str, str]) -> str:
    """Replace $var, ${var} and [[var]]; an unknown variable is an error, as it would leave
    Grafana sending a broken query."""
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in values:
            return values[name]
        if name in builtins:
            return builtins[name]
        raise QueryError(f"unknown template variable ${name} in {expr}")
    return VARIABLE.sub(one, expr)


def label_values(prom: Prometheus, query: str) -> list[str]:
    """Grafana's `label_values(metric, label)` / `label_values(label)` through the label API."""
    m = LABEL_VALUES.match(query)
    if not m:
        raise QueryError(f"unsupported variable query {query!r}")
    match, label = m.groups()
    params = {"match[]": match} if match else {}
    return sorted(prom.api(f"label/{label}/values", **params))


def regex_value(values: list[str]) -> str:
    """Several values of a multi-value variable as Grafana formats them in a regex matcher."""
    escaped = [re.sub(r"([\\.^$*+?()\[\]{}|])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def selections(prom: Prometheus, dashboard: dict, builtins: dict[str, str]) -> list[dict[str, str]]:
    """Every way the test fills the variables: each query variable resolved in order (later ones
    may use earlier ones); a multi-value one as All, as its first value alone, and as all values
    chosen one by one."""
    choices: list[dict[str, str]] = [{}]
    for var in variables(dashboard):
        if var["type"] == "datasource":
            continue
        assert var["type"] == "query", f"the harness fills query variables, not {var['type']}"
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        extended = []
        for chosen in choices:
            values = label_values(prom, fill(query, chosen, builtins))
            assert values, f"variable ${var['name']} ({query}) has no values"
            options = [regex_value(values[:1])]
            if var.get("multi"):
                options.append(regex_value(values))
            if var.get("includeAll"):
                options.append(var.get("allValue") or regex_value(values))
            extended += [{**chosen, var["name"]: o} for o in options]
        choices = extended
    return choices


def check(prom: Prometheus, expr: str) -> list[dict]:
    """Run a filled-in query: it must parse (QueryError otherwise) and return data, at least one
    series with a finite value (AssertionError otherwise)."""
    result = prom.query(expr)
    assert result, f"no data: {expr}"
    assert any(is_finite(r["value"][1]) for r in result), f"only NaN or Inf: {expr} -> {result}"
    return result
