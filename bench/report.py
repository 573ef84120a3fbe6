#!/usr/bin/env python3
"""Renders docs/benchmarks.md and docs/bench-*.png from one results file.

Usage: report.py [RESULTS.json [OUT_DIR]]
  RESULTS.json  default bench/results/latest.json (a link to the newest run)
  OUT_DIR       default docs/ (benchmarks.md, bench-throughput.png, bench-latency.png)
Run by bench/suite.py at the end of every suite run; it can be re-run alone.
The page's sections are in moscow_bench/report_page.py, the charts in moscow_bench/report_charts.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from moscow_bench.report_charts import chart_latency, chart_throughput
from moscow_bench.report_page import render
from moscow_bench.results import LATEST
from moscow_bench.workspace import DOCS, RESULTS


def main(argv: list[str]) -> None:
    src = Path(argv[0]) if argv else RESULTS / LATEST
    out = Path(argv[1]) if len(argv) > 1 else DOCS
    doc = json.loads(src.read_text())
    name = doc["meta"].get("results_file", src.resolve().name)
    out.mkdir(parents=True, exist_ok=True)
    chart_throughput(doc, out / "bench-throughput.png")
    chart_latency(doc, out / "bench-latency.png")
    (out / "benchmarks.md").write_text(render(doc, name))
    print(f"wrote benchmarks.md, bench-throughput.png, bench-latency.png in {out} from {src.resolve().name}")


if __name__ == "__main__":
    main(sys.argv[1:])
