#!/usr/bin/env python3
"""Renders docs/benchmarks.md and docs/bench-*.png from one results file.

Usage: report.py [RESULTS.json [OUT_DIR]]
  RESULTS.json  default bench/results/latest.json
  OUT_DIR       default docs/ (benchmarks.md, bench-throughput.png, bench-latency.png)
Run by bench/suite.py at the end of every suite run; it can be re-run alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs"
SCEN_TITLE = {"healthz": "GET /healthz", "visit": "GET / (durable visit)", "visits": "GET /visits"}
COLORS = {"moscow-time": "#c0392b", "moscow-time-batch1": "#e67e22",
          "flask-file": "#7f8c8d", "flask-redis": "#2980b9"}


def fmt_int(v) -> str:
    return "-" if v is None else f"{v:,.0f}"


def fmt_ms(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:,.0f}"


def run_of(doc, system, scen, c):
    for r in doc["runs"]:
        if r["system"] == system and r["scenario"] == scen and r["concurrency"] == c:
            return r
    return None


def chart_throughput(doc, path: Path) -> None:
    systems = list(doc["systems"])
    scens = [s for s in SCEN_TITLE if any(r["scenario"] == s for r in doc["runs"])]
    concs = doc["meta"]["concurrency"]
    fig, axes = plt.subplots(1, len(scens), figsize=(5.2 * len(scens), 4.6), sharey=True, squeeze=False)
    width = 0.8 / max(1, len(systems))
    for ax, scen in zip(axes[0], scens):
        for k, s in enumerate(systems):
            xs, ys = [], []
            for i, c in enumerate(concs):
                r = run_of(doc, s, scen, c)
                if r:
                    xs.append(i + (k - (len(systems) - 1) / 2) * width)
                    ys.append(max(r["rps"], 1))
            ax.bar(xs, ys, width, label=doc["systems"][s]["label"], color=COLORS.get(s))
        if scen == "visit" and doc.get("probe"):
            ax.axhline(doc["probe"]["cycles_per_sec"], color="black", ls="--", lw=1,
                       label="one fsync'd write per visit: disk ceiling")
        ax.set_title(SCEN_TITLE[scen])
        ax.set_xticks(range(len(concs)), [f"c={c}" for c in concs])
        ax.set_yscale("log")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("requests / s (log)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8.5, frameon=False)
    fig.suptitle(f"Throughput per scenario and concurrency (oha, {doc['meta']['duration_s']:g} s per run, "
                 f"{doc['meta']['cpus']} shared cores)")
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_latency(doc, path: Path) -> None:
    systems = list(doc["systems"])
    concs = doc["meta"]["concurrency"]
    n = len(systems)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.9 * rows), sharey=True, squeeze=False)
    probe = doc.get("probe")
    for idx, s in enumerate(systems):
        ax = axes[idx // cols][idx % cols]
        for key, style in (("p50", "o-"), ("p90", "s-"), ("p99", "^-"), ("max", "x:")):
            xs, ys = [], []
            for c in concs:
                r = run_of(doc, s, "visit", c)
                if r and r["latency_ms"].get(key) is not None:
                    xs.append(c)
                    ys.append(max(r["latency_ms"][key], 1e-3))
            ax.plot(xs, ys, style, label=key)
        if probe:
            ax.axhline(probe["median_ms"], color="black", ls="--", lw=1, label="median durable write (probe)")
            ax.axhline(3 * probe["median_ms"], color="grey", ls=":", lw=1, label="3 x median durable write")
        ax.set_xscale("log", base=2)
        ax.set_xticks(concs, [str(c) for c in concs])
        ax.set_yscale("log")
        ax.set_title(f"GET /  -  {doc['systems'][s]['label']}", fontsize=10)
        ax.set_xlabel("concurrency")
        ax.grid(which="both", alpha=0.3)
        if idx % cols == 0:
            ax.set_ylabel("latency, ms (log)")
        ax.legend(fontsize=7.5)
    for idx in range(n, rows * cols):
        axes[idx // cols][idx % cols].axis("off")
    fig.suptitle("Latency percentiles of GET / (a durable visit) by concurrency")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def target_notes(doc: dict) -> list[str]:
    """Plain facts from the run that explain each target's result."""
    out = []
    t = {x["key"]: x for x in doc.get("targets", [])}
    v = run_of(doc, "moscow-time", "visit", 64)
    h = run_of(doc, "moscow-time", "healthz", 64)
    probe = doc.get("probe") or {}
    if v and v.get("durable_writes"):
        c1 = run_of(doc, "moscow-time", "visit", 1)
        near = v.get("probe_adjacent")
        near_txt = f" (disk probe just before the run: median {near['median_ms']:.2f} ms)" if near else ""
        bound = 64 / (v["mean_write_ms"] / 1e3) if v["mean_write_ms"] else None
        out.append(
            f"GET / at c=64: {v['rps']:,.0f} visits/s = {v['writes_per_s']:,.0f} durable writes/s x "
            f"{v['mean_batch']} visits per write. One write took {v['mean_write_ms']:.2f} ms inside the service "
            f"under this load{near_txt}; at c=1 the same write took "
            + (f"{c1['mean_write_ms']:.2f} ms. " if c1 and c1.get('mean_write_ms') else "- ms. ")
            + f"Server CPU {v['cpu_s']:.1f} s, oha {v['loadgen_cpu_s']:.1f} s"
            + (f", others {v['other_cpu_s']:.1f} s" if 'other_cpu_s' in v else "")
            + f" of {2 * doc['meta']['duration_s']:g} CPU-s; GET /healthz at c=64 used "
            f"{h['cpu_s']:.1f} s + {h['loadgen_cpu_s']:.1f} s." if h else "")
    if v and h:
        out.append(
            f"Latency floor (Little's law): at c=64 the mean latency is 64 / throughput = "
            f"{64e3 / v['rps']:.2f} ms for GET / and {64e3 / h['rps']:.2f} ms even for GET /healthz "
            f"(its p99: {h['latency_ms']['p99']:.2f} ms), against a p99 limit of 3 x "
            f"{probe.get('median_ms', float('nan')):.3f} ms = {3 * probe.get('median_ms', float('nan')):.2f} ms.")
    for key, peer in (("vs_flask-file", "flask-file"), ("vs_flask-redis", "flask-redis")):
        pr = run_of(doc, peer, "visit", 64)
        if key in t and pr:
            lost = f"; it lost {pr['lost']:,} of the {pr['ok_200']:,} visits it answered with 200" + (
                " (its count went backwards)" if pr["lost"] > pr["ok_200"] else "") if pr["lost"] else ""
            out.append(f"{t[key]['title']}: {t[key]['detail']} ({t[key]['status']}); the peer ran "
                       f"{doc['systems'][peer].get('workers', '?')} gunicorn workers, its server CPU "
                       f"{pr['cpu_s']:.1f} s of {2 * doc['meta']['duration_s']:g} CPU-s{lost}.")
    if "rss_c256" in t:
        out.append(f"Peak RSS at c=256: {t['rss_c256']['value']} MiB (VmHWM of the one server process).")
    return out


def other_runs(doc: dict) -> list[tuple[str, dict]]:
    out = []
    for f in sorted((HERE / "results").glob("run-*.json")):
        try:
            out.append((f.name, json.loads(f.read_text())))
        except (OSError, ValueError):
            continue
    if doc["meta"].get("results_file") not in [n for n, _ in out]:
        out.append((doc["meta"].get("results_file", "this run"), doc))
    return out if len(out) > 1 else []


def render(doc: dict, results_name: str) -> str:
    m = doc["meta"]
    probe = doc.get("probe", {})
    sysd = doc["systems"]
    L = []
    a = L.append
    a("# Benchmarks")
    a("")
    a("<!-- Generated by bench/report.py from " + results_name + "; do not edit by hand, run `bench/run`. -->")
    a("")
    a(f"Run of {m['started_utc']} (`{m['mode']}` mode, {m['duration_s']:g} s of load per run after "
      f"{m['warmup_s']:g} s of warm-up), commit `{m['git_commit']}`, the suite took "
      f"{m.get('suite_seconds', 0) / 60:.1f} min. Raw numbers: `bench/results/{results_name}`.")
    a("")
    a(f"Machine: {m['cpus']} cores ({m['cpu_model']}), {m['mem_gib']} GiB, Linux {m['kernel']}; "
      f"data folders on `{m['data_fs']}`. Load generator: {m['load_generator']}; "
      f"{m['redis'].split(' sha=')[0]}; Python {m['python']}, {m['gunicorn']}. Load average (1/5/15 min) "
      f"at the start {' / '.join(m.get('loadavg_at_start', []))}, at the end {' / '.join(m.get('loadavg_at_end', []))} "
      "(anything else running on the machine competes with the benchmark).")
    a("")
    a("## How to run")
    a("")
    a("```")
    a("bench/run            # full suite, ~8 s per run, about 10-15 min on 2 cores")
    a("bench/run --quick    # ~1.5 s per run, about 3-4 min")
    a("bench/run --long     # 20 s per run")
    a("bench/run --duration 10 --concurrency 64,256 --systems moscow-time,flask-redis   # any subset")
    a("bench/run --help     # every option (--wait-quiet, --noisy-retries, --rust-log, --binary, ...)")
    a("```")
    a("")
    a("`bench/run` installs what it needs, idempotently: `oha` (`cargo install oha --locked` into `.tools/`), "
      "`redis-server` (Debian), a venv `.tools/bench-venv` from the pinned `bench/requirements.txt` "
      "(Flask, gunicorn, redis-py, matplotlib); it then builds the service with `cargo build --release` "
      "and runs `bench/suite.py`, which writes `bench/results/run-<time>.json` (+ `latest.json`) and this "
      "page with its charts (`bench/report.py`). It is not part of the pass/fail tests.")
    a("")
    a("## Targets")
    a("")
    a("| target | measured | limit | result | how |")
    a("|---|---|---|---|---|")
    for t in doc.get("targets", []):
        a(f"| {t['title']} | {t['value']}{(' ' + t['unit']) if t['unit'] else ''} | {t['cmp']} {t['limit']} "
          f"| **{t['status']}** | {t['detail']} |")
    a("")
    notes = target_notes(doc)
    if notes:
        a("Reading them:")
        a("")
        for n in notes:
            a(f"- {n}")
        a("")
    a("## Headline: c=64")
    a("")
    a("| system | GET /healthz req/s | GET / req/s | GET /visits req/s | GET / p50 / p99 ms | lost visits "
      "| peak RSS (GET /) |")
    a("|---|---|---|---|---|---|---|")
    for s, d in sysd.items():
        h, v, r = (run_of(doc, s, sc, 64) for sc in ("healthz", "visit", "visits"))
        a(f"| {d['label']} | {fmt_int(h and h['rps'])} | {fmt_int(v and v['rps'])} | {fmt_int(r and r['rps'])} | "
          f"{fmt_ms(v and v['latency_ms']['p50'])} / {fmt_ms(v and v['latency_ms']['p99'])} | "
          f"{'-' if not v else v['lost']} | {'-' if not v else '%.1f MiB' % (v['peak_rss_kib'] / 1024)} |")
    if probe:
        a(f"| *disk ceiling: one thread, {probe['cycle']}* | | {probe['cycles_per_sec']:,.0f} cycles/s | | "
          f"median {probe['median_ms']:.3f}, p99 {probe['p99_ms']:.3f} | | |")
    a("")
    ff, fr = run_of(doc, "flask-file", "visit", 64), run_of(doc, "flask-redis", "visit", 64)
    mh = run_of(doc, "moscow-time", "healthz", 64)
    a("Reference figures quoted in issue 5, measured on such a machine with `wrk -t2 -c64 -d10s`: Flask under "
      "gunicorn (1 worker) file counter ~1,300 req/s; Flask+Redis (4 workers) appendfsync always ~1,700 req/s; "
      "a lossy actix app ~65,000 req/s; one thread temp+fsync+rename+fsync-dir ~1,400-1,800 cycles/s. "
      f"This run at c=64: file counter {fmt_int(ff and ff['rps'])}, Flask+Redis {fmt_int(fr and fr['rps'])}, "
      f"moscow-time GET /healthz {fmt_int(mh and mh['rps'])} req/s, disk "
      f"{fmt_int(probe.get('cycles_per_sec'))} cycles/s.")
    a("")
    a("![Throughput per scenario and concurrency](bench-throughput.png)")
    a("")
    a("![Latency percentiles of GET /](bench-latency.png)")
    a("")
    if probe:
        a("## The physical limit: one fsync'd write per visit")
        a("")
        a(f"`bench/fsync_probe.py` repeats `{probe['cycle']}` in one thread, in a folder on the same "
          f"file system as the services' data, for {probe['before']['seconds']:.0f} s before and "
          f"{probe['after']['seconds']:.0f} s after the load runs, and for {probe.get('adjacent_seconds', 0):.0f} s "
          "in short bursts right before every `GET /` run (while the server idles). Together: "
          f"**{probe['cycles_per_sec']:,.0f} "
          f"cycles/s**; one durable write takes median **{probe['median_ms']:.3f} ms**, mean "
          f"{probe['mean_ms']:.3f} ms, p90 {probe['p90_ms']:.3f} ms, p99 {probe['p99_ms']:.3f} ms, max "
          f"{probe['max_ms']:.1f} ms (before: {probe['before']['cycles_per_sec']:,.0f}/s, median "
          f"{probe['before']['median_ms']:.3f} ms; after: {probe['after']['cycles_per_sec']:,.0f}/s, median "
          f"{probe['after']['median_ms']:.3f} ms). A counter that makes every visit durable on its own "
          "cannot count faster than this; only group commit (many visits per write) can.")
        a("")
    gc = [r for r in doc["runs"] if r["scenario"] == "visit" and r.get("durable_writes") is not None]
    if gc:
        a("## Group commit at work")
        a("")
        a("From the service's own `/metrics` (`moscow_time_persist_duration_seconds`, "
          "`moscow_time_persist_batch_size`), read just before and after each measured `GET /` run. "
          "Little's law gives the mean latency a closed-loop client must see at concurrency c: c / throughput.")
        a("")
        a("| system | c | visits/s | durable writes/s | visits per write | mean write ms | disk probe just before: "
          "median ms | mean latency ms | c / throughput ms |")
        a("|---|---|---|---|---|---|---|---|---|")
        for r in gc:
            a(f"| {sysd[r['system']]['label']} | {r['concurrency']} | {fmt_int(r['rps'])} | "
              f"{fmt_int(r['writes_per_s'])} | {r['mean_batch'] if r['mean_batch'] is not None else '-'} | "
              f"{fmt_ms(r['mean_write_ms'])} | "
              f"{fmt_ms(r['probe_adjacent']['median_ms']) if r.get('probe_adjacent') else '-'} | "
              f"{fmt_ms(r['latency_ms']['mean'])} | "
              f"{fmt_ms(1e3 * r['concurrency'] / r['rps'] if r['rps'] else None)} |")
        a("")
    a("## Correctness: lost visits and distinct visit numbers")
    a("")
    a("For every `GET /` run the durable count is read before the measured load (after warm-up) and after "
      "it: `lost = count_before + number of 200 responses - count_after` (the `visits` file for moscow-time "
      "and the file counter, `GET hits` from Redis for the Redis peer). `oha -w` waits for the requests in "
      "flight at the deadline, so every request the server saw is also counted by the client.")
    a("")
    a("| system | " + " | ".join(f"c={c}: 200s / lost" for c in m["concurrency"]) + " |")
    a("|---|" + "---|" * len(m["concurrency"]))
    for s, d in sysd.items():
        cells = []
        for c in m["concurrency"]:
            r = run_of(doc, s, "visit", c)
            cells.append("-" if not r else f"{r['ok_200']:,} / **{r['lost']:,}**"
                         + (f" ({100 * r['lost'] / r['ok_200']:.0f}%)" if r["ok_200"] and r["lost"] else ""))
        a(f"| {d['label']} | " + " | ".join(cells) + " |")
    a("")
    dist = doc.get("distinct", {})
    if dist:
        any_d = next(iter(dist.values()))
        a(f"Distinct visit numbers: a separate bounded client of our own (`bench/suite.py`, "
          f"{any_d['concurrency']} threads with keep-alive connections, {any_d['requests']:,} `GET /`) keeps "
          "every visit number handed out: the `X-Visit-Number` header for moscow-time, the number printed "
          "in the page for the peers.")
        a("")
        a("| system | 200s | numbers | distinct | duplicates | lost | numbers = before+1..before+200s | took |")
        a("|---|---|---|---|---|---|---|---|")
        for s, d in dist.items():
            a(f"| {sysd[s]['label']} | {d['ok_200']:,} | {d['numbers_seen']:,} | {d['distinct_numbers']:,} | "
              f"{d['duplicates']:,} | {d['lost']:,} | {'yes' if d['contiguous'] else 'no'} | {d['elapsed_s']:.1f} s |")
        a("")
    st = doc.get("startup", {})
    if st:
        a("## Start-up")
        a("")
        a("| system | from spawn to first 200 | median | samples (ms) |")
        a("|---|---|---|---|")
        for s, d in st.items():
            samples = ", ".join(f"{x:g}" for x in d["samples_ms"][:12]) + (" ..." if len(d["samples_ms"]) > 12 else "")
            a(f"| {sysd[s]['label']} | `{d['path']}` ({d.get('note', 'poll every 0.2 ms, fresh data folder')}) | "
              f"**{d['median_ms']:g} ms** | {samples} |")
        a("")
    a("## All runs")
    a("")
    a("Peak RSS is the largest sum of `VmHWM` over the server's processes (gunicorn master + workers, plus "
      "`redis-server` for the Redis peer) sampled every 100 ms; CPU is the server processes' utime+stime "
      "during the measured load; `oha CPU` is the load generator's; `other CPU` is what the rest of the "
      "machine's other processes used meanwhile (user+system time from /proc/stat minus both; interrupt time, "
      f"where loopback TCP is processed, is left out; {m['cpus']} cores x "
      f"{m['duration_s']:g} s = {m['cpus'] * m['duration_s']:g} CPU-s available): anything well above zero "
      "is another tenant competing with the run. A run where they used more than "
      f"{100 * m.get('noise_limit', 0):.0f}% of all CPU time is repeated (up to {m.get('noisy_retries', 0)} times, "
      "after waiting for a quiet moment) and the calmest attempt is kept; `tries` counts the attempts.")
    a("")
    a("| system | request | c | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | peak RSS MiB "
      "| server CPU s | CPU µs/req | oha CPU s | other CPU s | tries | lost |")
    a("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in doc["runs"]:
        lm = r["latency_ms"]
        other = f"{r['other_cpu_s']:.1f}" if "other_cpu_s" in r else "-"
        per_req = "-" if r.get("server_cpu_us_per_req") is None else format(r["server_cpu_us_per_req"], ".0f")
        lost = "-" if r["lost"] is None else format(r["lost"], ",")
        a(f"| {sysd[r['system']]['label']} | GET {r['path']} | {r['concurrency']} | {fmt_int(r['rps'])} | "
          f"{fmt_ms(lm['p50'])} | {fmt_ms(lm['p90'])} | {fmt_ms(lm['p99'])} | {fmt_ms(lm['max'])} | "
          f"{r['errors']:,} | {r['peak_rss_kib'] / 1024:.1f} | {r['cpu_s']:.1f} | {per_req} | "
          f"{r['loadgen_cpu_s']:.1f} | {other} | {r.get('attempts', 1)} | {lost} |")
    a("")
    others = other_runs(doc)
    if others:
        a("## Every kept run at c=64")
        a("")
        a("The same figures from every `bench/results/run-*.json` (this run in bold): the spread between runs "
          "on this shared machine.")
        a("")
        a("| run | mode | GET /healthz | GET / | GET / p99 ms | ratio | --max-batch 1 | file counter | Flask+Redis "
          "| disk cycles/s | median write ms |")
        a("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, d in others:
            g = lambda sys_, sc: run_of(d, sys_, sc, 64)  # noqa: E731
            h, v = g("moscow-time", "healthz"), g("moscow-time", "visit")
            b, ff, fr = g("moscow-time-batch1", "visit"), g("flask-file", "visit"), g("flask-redis", "visit")
            pr = d.get("probe") or {}
            cells = [name, d["meta"]["mode"], fmt_int(h and h["rps"]), fmt_int(v and v["rps"]),
                     fmt_ms(v and v["latency_ms"]["p99"]),
                     f"{v['rps'] / h['rps']:.2f}" if v and h else "-",
                     fmt_int(b and b["rps"]), fmt_int(ff and ff["rps"]), fmt_int(fr and fr["rps"]),
                     fmt_int(pr.get("cycles_per_sec")), fmt_ms(pr.get("median_ms"))]
            if name == results_name:
                cells = [f"**{c}**" for c in cells]
            a("| " + " | ".join(cells) + " |")
        a("")
    a("## Method and caveats")
    a("")
    a("- Every run starts its system afresh on 127.0.0.1 (a free port) with an empty data folder under "
      "`bench/results/tmp/`, waits for a 200 (`/readyz` for moscow-time, `/healthz` for the peers), warms it "
      f"up with {m['warmup_s']:g} s of the same load, then drives it with `oha -c C -z {m['duration_s']:g}s -w` "
      "(closed loop, keep-alive; gunicorn's sync workers close each connection, so oha reconnects), and stops "
      "it with SIGTERM.")
    a(f"- The load generator and the servers share the machine's {m['cpus']} cores; nothing is pinned. "
      "At high rates oha itself uses about as much CPU as the server (see `oha CPU s`), so the absolute "
      "numbers are a floor for what the server does on its own; the ratios compare systems under the "
      "same generator.")
    a("- `GET /healthz` is the HTTP ceiling of the same server: the same stack without the counter.")
    a(f"- moscow-time runs with its defaults except `--max-batch` where named; `RUST_LOG`: {m.get('rust_log', 'unset')}, "
      "written to a log file like a container runtime would collect it. gunicorn keeps its default (no access log).")
    a("- Lost visits of the file counter come from two races of the read-add-write-in-place pattern: two "
      "workers read the same value (a lost update), and a worker that reads the file right after another one "
      "truncated it (`open(..., \"w\")`) reads an empty file, takes it as 0 and restarts the count; the count "
      "can even go backwards, so a run can lose more visits than it served.")
    for s, d in sysd.items():
        extra = f" Command: `{' '.join(d['command'])}`." if d.get("command") else ""
        a(f"- **{d['label']}**: {d['description']}{extra}")
    a("- The peers live in `bench/peers/` (`flask_file/app.py`, `flask_redis/app.py`, `flask_redis/redis.conf.in`).")
    a("")
    return "\n".join(L)


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "latest.json"
    doc = json.loads(src.read_text())
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else DOCS
    name = doc["meta"].get("results_file", src.name)
    out.mkdir(parents=True, exist_ok=True)
    chart_throughput(doc, out / "bench-throughput.png")
    chart_latency(doc, out / "bench-latency.png")
    (out / "benchmarks.md").write_text(render(doc, name))
    print(f"wrote benchmarks.md, bench-throughput.png, bench-latency.png in {out} from {src.name}")


if __name__ == "__main__":
    main()
