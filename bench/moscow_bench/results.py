"""The results files in ``bench/results/``, and finding a run in one.

Every suite run writes ``run-<UTC time>.json``; ``latest.json`` is a relative symbolic link to
the newest of them (a pointer, not a copy), so ``bench/report.py`` and anyone else can open
``latest.json`` like any results file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from moscow_bench.workspace import RESULTS

LATEST = "latest.json"


def find_run(doc: dict, system: str, scenario: str, conc: int) -> dict | None:
    """The run of `system` for `scenario` at concurrency `conc`, if the document has one."""
    for r in doc["runs"]:
        if r["system"] == system and r["scenario"] == scenario and r["concurrency"] == conc:
            return r
    return None


def write_run(doc: dict, folder: Path) -> Path:
    """Writes the document as ``folder/<meta.results_file>`` and points ``latest.json`` at it."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / doc["meta"]["results_file"]
    out.write_text(json.dumps(doc, indent=1) + "\n")
    point_latest_at(out)
    return out


def point_latest_at(run_file: Path) -> None:
    """Makes ``latest.json`` beside `run_file` a relative link to it, replacing it atomically."""
    link = run_file.parent / LATEST
    tmp = run_file.parent / f".{LATEST}.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_file.name)
    os.replace(tmp, link)


def kept_runs(folder: Path = RESULTS) -> list[tuple[str, dict]]:
    """Every readable ``run-*.json`` in `folder`, oldest first, as (file name, document)."""
    out = []
    for f in sorted(folder.glob("run-*.json")):
        try:
            out.append((f.name, json.loads(f.read_text())))
        except (OSError, ValueError):
            continue
    return out
