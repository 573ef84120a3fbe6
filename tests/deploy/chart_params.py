"""Build the chart README's parameter tables from the `## @param` lines of values.yaml.

    python3 tests/deploy/chart_params.py          # print the tables
    python3 tests/deploy/chart_params.py --write  # rewrite them in helm/moscow-time/README.md

The README keeps the tables between `<!-- params:start -->` and `<!-- params:end -->`;
test_chart_docs.py checks they are current and that every value is documented.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "moscow-time"
START, END = "<!-- params:start -->", "<!-- params:end -->"


def params() -> list[tuple[str, list[tuple[str, str]]]]:
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for line in (CHART / "values.yaml").read_text().splitlines():
        if m := re.match(r"\s*## @section (.*)", line):
            sections.append((m.group(1).strip(), []))
        elif m := re.match(r"\s*## @param (\S+) (.*)", line):
            sections[-1][1].append((m.group(1), m.group(2).strip()))
    return sections


def lookup(values: dict, dotted: str):
    cur = values
    for k in dotted.split("."):
        cur = cur[k]
    return cur


def fmt(v) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    s = yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()
    return s.removesuffix("...").strip()


def tables() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    out = []
    for section, rows in params():
        out += [f"### {section}", "", "| Name | Description | Default |", "|---|---|---|"]
        for key, desc in rows:
            d, v = desc.replace("|", r"\|"), fmt(lookup(values, key)).replace("|", r"\|")
            out.append(f"| `{key}` | {d} | `{v}` |")
        out.append("")
    return "\n".join(out)


def readme_with_tables(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{tables()}{END}{tail}"


if __name__ == "__main__":
    if "--write" in sys.argv:
        p = CHART / "README.md"
        p.write_text(readme_with_tables(p.read_text()))
    else:
        print(tables())
