"""Where the suite keeps things, and its log line.

Paths are derived from this file's place in the repository (``bench/moscow_bench/``),
so the suite runs the same from any working directory.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
DOCS = ROOT / "docs"
TOOLS = ROOT / ".tools"
VENV = TOOLS / "venv"
PEERS = BENCH / "peers"
RESULTS = BENCH / "results"
TMP = RESULTS / "tmp"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fresh_dir(name: str) -> Path:
    """An empty scratch folder ``bench/results/tmp/<name>`` (emptied if it existed)."""
    d = TMP / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def loadavg() -> list[str]:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg prints them."""
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]
