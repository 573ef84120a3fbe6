#!/usr/bin/env python3
"""The moscow-time benchmark suite (run it through ``bench/run``).

For every system under test and every scenario x concurrency it starts the
system on 127.0.0.1 with a fresh data folder, waits until it answers, warms
it up, drives it with ``oha`` for a fixed time (``-w``: requests still in
flight at the deadline are waited for, so every request the server counted
is also counted by the client), samples the server's peak RSS and CPU time
from /proc, reads the durable count, and stops it. Then it runs the
visit-number distinctness check, the startup-time check and the fsync probe,
writes ``bench/results/run-<time>.json`` (and points ``latest.json`` at it) and
calls ``bench/report.py`` to render ``docs/benchmarks.md`` and its charts.

Only 127.0.0.1 is ever targeted; every loop is bounded in time or count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from argparse import Namespace
from datetime import datetime, timezone
from pathlib import Path

from moscow_bench import options as command_line
from moscow_bench.checks import (AdjacentProbes, distinct_check, pool_probes, remove_probe_folders,
                                 run_probe, startup_check, startup_from_runs)
from moscow_bench.load import run_with_retries
from moscow_bench.machine import meta
from moscow_bench.procs import wait_quiet
from moscow_bench.results import write_run
from moscow_bench.systems import MoscowTime, System, build_systems
from moscow_bench.targets import evaluate
from moscow_bench.workspace import BENCH, DOCS, RESULTS, TMP, loadavg, log


def main(argv: list[str] | None = None) -> int:
    options = command_line.parse(__doc__, argv)
    binary = Path(options.binary).resolve()
    systems = build_systems(options.system_names, binary, options.rust_log, options.peer_workers)
    if any(isinstance(s, MoscowTime) for s in systems) and not os.access(binary, os.X_OK):
        sys.exit(f"no service binary at {binary} (build it: cargo build --release)")

    TMP.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    t_start = time.monotonic()
    doc: dict = {"meta": meta(options, binary, started), "systems": {s.name: s.describe() for s in systems}}
    if options.wait_quiet > 0:
        wait_quiet(options.wait_quiet)
        doc["meta"]["loadavg_at_start"] = loadavg()

    probe_before = probe(options.probe_seconds, "before")
    adjacent = AdjacentProbes()
    doc["runs"] = load_runs(options, systems, adjacent)
    doc["distinct"] = distinct_checks(systems, options.distinct_requests)
    doc["startup"] = startup_checks(systems, options.startup_runs, doc["runs"])
    probe_after = probe(options.probe_seconds, "after")
    doc["probe"] = pool_probes(probe_before, probe_after, adjacent)
    remove_probe_folders()

    doc["targets"] = evaluate(doc)
    doc["meta"]["suite_seconds"] = round(time.monotonic() - t_start, 1)
    doc["meta"]["loadavg_at_end"] = loadavg()
    doc["meta"]["results_file"] = f"run-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    results = Path(options.results_dir).resolve()
    out = write_run(doc, results)
    log(f"results: {out} (latest.json beside it points to it)")

    print_targets(doc["targets"])
    if not options.no_report:
        render_report(out, results)
    log(f"suite took {doc['meta']['suite_seconds']:.0f}s")
    return 0


def probe(seconds: float, when: str) -> tuple[dict, list[float]]:
    """The fsync probe before or after the load runs."""
    log(f"fsync probe ({seconds}s, {when} load)")
    res, times = run_probe(seconds, when)
    log(f"  {res['cycles_per_sec']:.0f} cycles/s, median {res['median_ms']:.3f} ms")
    return res, times


def load_runs(options: Namespace, systems: list[System], adjacent: AdjacentProbes) -> list[dict]:
    """Every system x scenario x concurrency, in that order."""
    runs = []
    total = len(systems) * len(options.scenario_names) * len(options.concurrency_levels)
    for s in systems:
        for scenario in options.scenario_names:
            for conc in options.concurrency_levels:
                position = f"{len(runs) + 1}/{total}"
                runs.append(run_with_retries(options, s, scenario, conc, position, adjacent))
    return runs


def distinct_checks(systems: list[System], requests: int) -> dict:
    out = {}
    if requests <= 0:
        return out
    for s in systems:
        log(f"distinctness check: {s.name}, {requests} GET / at c=64, own client")
        d = distinct_check(s, requests)
        log(f"  {d['ok_200']} x 200, {d['distinct_numbers']} distinct, {d['duplicates']} dup, "
            f"lost {d['lost']}, contiguous={d['contiguous']}")
        out[s.name] = d
    return out


def startup_checks(systems: list[System], starts: int, runs: list[dict]) -> dict:
    """moscow-time: `starts` dedicated starts; the peers: their start in every load run."""
    out = {}
    for s in systems:
        if isinstance(s, MoscowTime) and starts > 0:
            log(f"startup: {s.name}, {starts} starts, spawn -> first 200 on /readyz")
            out[s.name] = startup_check(s, starts)
            log(f"  median {out[s.name]['median_ms']} ms")
    for s in systems:
        if not isinstance(s, MoscowTime):
            peer = startup_from_runs(s, runs)
            if peer:
                out[s.name] = peer
    return out


def print_targets(targets: list[dict]) -> None:
    print("\nTargets (ratios from this run):")
    for t in targets:
        print(f"  {t['status']:4}  {t['title']}: {t['value']}{t['unit']} "
              f"(limit {t['cmp']} {t['limit']}) -- {t['detail']}")


def render_report(results_file: Path, results_dir: Path) -> None:
    """The committed report (docs/) only from runs kept in bench/results; others render beside their JSON."""
    out_dir = DOCS if results_dir == RESULTS.resolve() else results_dir
    subprocess.run([sys.executable, str(BENCH / "report.py"), str(results_file), str(out_dir)], check=True)


if __name__ == "__main__":
    sys.exit(main())
