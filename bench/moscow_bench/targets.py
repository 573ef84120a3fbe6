"""The targets the suite checks a run against, computed from its results document.

Each target is a row ``{key, title, value, limit, cmp, pass, status, detail, unit}``; ``status``
is PASS, MISS, or N/A when a figure is missing. They are ratios or limits that hold on any
machine: GET / against GET /healthz of the same server, against the disk's fsync ceiling and
against the peers; no lost visits; peak RSS; start-up time.
"""

from __future__ import annotations

from moscow_bench.results import find_run


def target(key: str, title: str, value, limit, cmp: str, detail: str, unit: str = "") -> dict:
    ok = None if value is None or limit is None else (value >= limit if cmp == ">=" else value <= limit)
    return {"key": key, "title": title, "value": value, "limit": limit, "cmp": cmp,
            "pass": ok, "status": {True: "PASS", False: "MISS", None: "N/A"}[ok],
            "detail": detail, "unit": unit}


def evaluate(doc: dict) -> list[dict]:
    """Every target the document has the figures for, in the report's order."""
    return (_throughput_targets(doc) + _zero_lost_target(doc) + _rss_target(doc)
            + _startup_target(doc))


def _throughput_targets(doc: dict) -> list[dict]:
    out = []
    visit = find_run(doc, "moscow-time", "visit", 64)
    health = find_run(doc, "moscow-time", "healthz", 64)
    probe = doc.get("probe") or {}
    v = visit["rps"] if visit else None
    if visit and health:
        out.append(target("visit_vs_healthz", "GET / at c=64 >= 0.5 x GET /healthz of the same server",
                          round(v / health["rps"], 3), 0.5, ">=",
                          f"{v:,.0f} vs {health['rps']:,.0f} req/s", "x"))
    if visit and probe:
        out.append(target("visit_vs_fsync_ceiling", "GET / at c=64 >= 10 x one-fsync-per-visit ceiling",
                          round(v / probe["cycles_per_sec"], 2), 10, ">=",
                          f"{v:,.0f} req/s vs {probe['cycles_per_sec']:,.0f} cycles/s", "x"))
        out.append(target("p99_vs_durable_write", "p99 of GET / at c=64 <= 3 x median durable write",
                          round(visit["latency_ms"]["p99"] / probe["median_ms"], 2), 3, "<=",
                          f"p99 {visit['latency_ms']['p99']:.3f} ms vs median write {probe['median_ms']:.3f} ms",
                          "x"))
    for peer, need in (("flask-file", 20), ("flask-redis", 10)):
        pr = find_run(doc, peer, "visit", 64)
        if visit and pr:
            out.append(target(f"vs_{peer}", f"GET / at c=64 >= {need} x {doc['systems'][peer]['label']}",
                              round(v / pr["rps"], 2) if pr["rps"] else None, need, ">=",
                              f"{v:,.0f} vs {pr['rps']:,.0f} req/s", "x"))
    return out


def _zero_lost_target(doc: dict) -> list[dict]:
    ours = [r for r in doc["runs"] if r["system"] == "moscow-time" and r["scenario"] == "visit"]
    if not ours:
        return []
    lost = {r["concurrency"]: r["lost"] for r in ours}
    d = doc.get("distinct", {}).get("moscow-time")
    bad = sum(abs(x) for x in lost.values()) + (0 if d is None or d["all_distinct"] else 1)
    detail = "lost per concurrency " + ", ".join(f"c={c}: {x}" for c, x in sorted(lost.items()))
    if d:
        detail += (f"; distinctness check: {d['distinct_numbers']}/{d['ok_200']} distinct, "
                   f"{d['duplicates']} duplicates, contiguous={d['contiguous']}")
    return [target("zero_lost", "zero lost visits at every concurrency (and all numbers distinct)",
                   bad, 0, "<=", detail, "")]


def _rss_target(doc: dict) -> list[dict]:
    c256 = [r for r in doc["runs"] if r["system"] == "moscow-time" and r["concurrency"] == 256]
    if not c256:
        return []
    worst = max(c256, key=lambda r: r["peak_rss_kib"])
    return [target("rss_c256", "peak RSS under c=256 <= 20 MiB",
                   round(worst["peak_rss_kib"] / 1024, 2), 20, "<=",
                   f"max over scenarios at c=256 (worst: {worst['scenario']})", "MiB")]


def _startup_target(doc: dict) -> list[dict]:
    st = doc.get("startup", {}).get("moscow-time")
    if not st:
        return []
    return [target("startup", "spawn to first 200 from /readyz <= 100 ms (median)",
                   st["median_ms"], 100, "<=", f"samples {st['samples_ms']} ms", "ms")]
