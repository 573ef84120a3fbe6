"""The command line of ``bench/suite.py``: every flag, its default and its help.

``bench/run`` adds its presets (``--quick``, ``--long``) in front of the user's flags, so a
flag given later wins. ``parse`` returns the parsed options with three derived lists:
``concurrency_levels``, ``scenario_names`` and ``system_names``.
"""

from __future__ import annotations

import argparse

from moscow_bench.load import SCENARIOS
from moscow_bench.systems import SYSTEM_NAMES
from moscow_bench.workspace import RESULTS, ROOT, TOOLS


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "moscow-time"))
    ap.add_argument("--oha", default=str(TOOLS / "bin" / "oha"))
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of load per run")
    ap.add_argument("--warmup", type=float, default=1.5, help="seconds of warm-up load per run")
    ap.add_argument("--concurrency", default="1,16,64,256")
    ap.add_argument("--scenarios", default="healthz,visit,visits")
    ap.add_argument("--systems", default=",".join(SYSTEM_NAMES))
    ap.add_argument("--peer-workers", type=int, default=4)
    ap.add_argument("--probe-seconds", type=float, default=5.0)
    ap.add_argument("--adjacent-probe", type=float, default=1.0,
                    help="seconds of fsync probe right before every GET / run (0: none)")
    ap.add_argument("--distinct-requests", type=int, default=5000)
    ap.add_argument("--startup-runs", type=int, default=7)
    ap.add_argument("--rust-log", default=None,
                    help="RUST_LOG for moscow-time (default: unset, the service's default `info`, "
                         "one JSON line per request to a log file)")
    ap.add_argument("--mode", default="custom", help="label stored in the results (default/quick/long)")
    ap.add_argument("--wait-quiet", type=float, default=60,
                    help="first wait up to this many seconds for other work on the machine to stop")
    ap.add_argument("--noisy-retries", type=int, default=2,
                    help="repeat a run disturbed by other processes up to N times, keep the calmest")
    ap.add_argument("--noise-limit", type=float, default=0.15,
                    help="a run is disturbed when other processes used more than this share of all CPUs")
    ap.add_argument("--no-report", action="store_true", help="do not render docs/benchmarks.md")
    ap.add_argument("--results-dir", default=str(RESULTS),
                    help="where run-<time>.json and latest.json go (default bench/results)")
    return ap


def _names(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def parse(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    ap = parser(description)
    options = ap.parse_args(argv)
    options.concurrency_levels = [int(x) for x in _names(options.concurrency)]
    options.scenario_names = _names(options.scenarios)
    options.system_names = _names(options.systems)
    for s in options.scenario_names:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s}")
    for s in options.system_names:
        if s not in SYSTEM_NAMES:
            ap.error(f"unknown system {s} (known: {', '.join(SYSTEM_NAMES)})")
    return options
