"""The two charts of ``docs/benchmarks.md``: throughput per scenario, latency of GET /."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from moscow_bench.results import find_run  # noqa: E402

SCENARIO_TITLES = {"healthz": "GET /healthz", "visit": "GET / (durable visit)", "visits": "GET /visits"}
COLORS = {"moscow-time": "#c0392b", "moscow-time-batch1": "#e67e22",
          "flask-file": "#7f8c8d", "flask-redis": "#2980b9"}


def chart_throughput(doc: dict, path: Path) -> None:
    """One panel per scenario: requests/s per system and concurrency, log scale."""
    systems = list(doc["systems"])
    scens = [s for s in SCENARIO_TITLES if any(r["scenario"] == s for r in doc["runs"])]
    concs = doc["meta"]["concurrency"]
    fig, axes = plt.subplots(1, len(scens), figsize=(5.2 * len(scens), 4.6), sharey=True, squeeze=False)
    width = 0.8 / max(1, len(systems))
    for ax, scen in zip(axes[0], scens):
        for k, s in enumerate(systems):
            xs, ys = [], []
            for i, c in enumerate(concs):
                r = find_run(doc, s, scen, c)
                if r:
                    xs.append(i + (k - (len(systems) - 1) / 2) * width)
                    ys.append(max(r["rps"], 1))
            ax.bar(xs, ys, width, label=doc["systems"][s]["label"], color=COLORS.get(s))
        if scen == "visit" and doc.get("probe"):
            ax.axhline(doc["probe"]["cycles_per_sec"], color="black", ls="--", lw=1,
                       label="one fsync'd write per visit: disk ceiling")
        ax.set_title(SCENARIO_TITLES[scen])
        ax.set_xticks(range(len(concs)), [f"c={c}" for c in concs])
        ax.set_yscale("log")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("requests / s (log)")
    handles, labels = _merged_legend(axes[0])
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8.5, frameon=False)
    fig.suptitle(f"Throughput per scenario and concurrency (oha, {doc['meta']['duration_s']:g} s per run, "
                 f"{doc['meta']['cpus']} shared cores)")
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _merged_legend(axes) -> tuple[list, list]:
    """The last panel's legend entries, then any other panel's that it lacks."""
    handles, labels = axes[-1].get_legend_handles_labels()
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    return handles, labels


def chart_latency(doc: dict, path: Path) -> None:
    """One panel per system: p50/p90/p99/max of GET / by concurrency, against the disk probe."""
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
                r = find_run(doc, s, "visit", c)
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
