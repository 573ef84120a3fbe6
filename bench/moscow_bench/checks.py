"""The checks besides the load runs.

- Distinct visit numbers: a bounded concurrent client of our own keeps every visit number
  handed out and checks they are distinct and contiguous, with none lost.
- Start-up time: spawn to the first 200 from ``/readyz``, polled tightly, fresh data each time.
- The fsync probe (``bench/fsync_probe.py``): the disk's one-durable-write-per-visit ceiling,
  before and after the load and in short bursts right before every ``GET /`` run, pooled.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import shutil
import statistics
import threading
import time
from pathlib import Path

import fsync_probe
from moscow_bench.loopback import free_port, http_status
from moscow_bench.systems import MoscowTime, System, terminate
from moscow_bench.workspace import TMP, fresh_dir

DISTINCT_CONCURRENCY = 64


# ----------------------------------------------------------------- fsync probe ----

def run_probe(seconds: float, tag: str) -> tuple[dict, list[float]]:
    """One fsync probe in a fresh folder: its summary and every cycle's duration (s)."""
    folder = fresh_dir(f"probe-{tag}")
    res = fsync_probe.probe(str(folder), seconds)
    return res, res.pop("_times")


class AdjacentProbes:
    """The short probes run right before every ``GET /`` run, also of repeated attempts."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.seconds = 0.0

    def run(self, seconds: float, tag: str) -> dict:
        res, times = run_probe(seconds, tag)
        self.times.extend(times)
        self.seconds += res["seconds"]
        return res


def pool_probes(before: tuple[dict, list[float]], after: tuple[dict, list[float]],
                adjacent: AdjacentProbes) -> dict:
    """The results document's ``probe``: every cycle of every probe of the run, pooled."""
    (p1, times1), (p2, times2) = before, after
    times = sorted(times1 + times2 + adjacent.times)
    secs = p1["seconds"] + p2["seconds"] + adjacent.seconds
    return {
        "pooled": "before + after + the short probe before every GET / run",
        "adjacent_seconds": round(adjacent.seconds, 3),
        "cycle": p1["cycle"],
        "seconds": round(secs, 3),
        "cycles": len(times),
        "cycles_per_sec": round(len(times) / secs, 1),
        "median_ms": round(statistics.median(times) * 1e3, 4),
        "mean_ms": round(statistics.fmean(times) * 1e3, 4),
        "p90_ms": round(times[int(0.9 * (len(times) - 1))] * 1e3, 4),
        "p99_ms": round(times[int(0.99 * (len(times) - 1))] * 1e3, 4),
        "max_ms": round(times[-1] * 1e3, 4),
        "before": p1,
        "after": p2,
    }


def remove_probe_folders() -> None:
    for d in TMP.glob("probe-*"):
        shutil.rmtree(d, ignore_errors=True)


# -------------------------------------------------------- distinct visit numbers ----

class _VisitCollector:
    """Threads sharing `n` GET / requests on keep-alive connections, keeping every visit number."""

    def __init__(self, system: System, port: int, n: int):
        self.system, self.port = system, port
        self.remaining = n
        self.numbers: list[int] = []
        self.statuses: dict[int, int] = {}
        self.missing = 0
        self.lock = threading.Lock()

    def _take_one(self) -> bool:
        with self.lock:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def worker(self) -> None:
        conn = self._connect()
        while self._take_one():
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
                num = resp.getheader("X-Visit-Number")
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = self._connect()
                status, num, body = -1, None, b""
            if num is None and self.system.number_re is not None and status == 200:
                m = self.system.number_re.search(body)
                num = m.group(1) if m else None
            self._record(status, num)
        conn.close()

    def _record(self, status: int, num: str | bytes | None) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 200:
                if num is None:
                    self.missing += 1
                else:
                    self.numbers.append(int(num))

    def run(self, conc: int) -> float:
        """Runs `conc` workers until the requests are used up; the seconds that took."""
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(conc) as ex:
            for f in [ex.submit(self.worker) for _ in range(conc)]:
                f.result()
        return time.perf_counter() - t0


def distinct_check(system: System, n: int, conc: int = DISTINCT_CONCURRENCY) -> dict:
    """A bounded concurrent client of our own that keeps every visit number."""
    tag = "distinct"
    r, _ = system.start_ready(tag)
    try:
        before = r.count()
        client = _VisitCollector(system, r.port, n)
        elapsed = client.run(conc)
        after = r.count()
    finally:
        r.stop()
    system.discard(tag, r)
    numbers, missing = client.numbers, client.missing
    ok = client.statuses.get(200, 0)
    uniq = len(set(numbers))
    expected = set(range(before + 1, before + ok + 1))
    return {
        "requests": n,
        "concurrency": conc,
        "elapsed_s": round(elapsed, 3),
        "ok_200": ok,
        "statuses": {str(k): v for k, v in client.statuses.items()},
        "numbers_seen": len(numbers),
        "numbers_missing": missing,
        "distinct_numbers": uniq,
        "duplicates": len(numbers) - uniq,
        "count_before": before,
        "count_after": after,
        "lost": before + ok - after,
        "contiguous": set(numbers) == expected and missing == 0,
        "all_distinct": uniq == len(numbers) and missing == 0 and len(numbers) == ok,
    }


# ------------------------------------------------------------------- start-up ----

def _time_one_start(system: MoscowTime, i: int) -> float | None:
    """Seconds from spawn to the first 200 on the ready path, or None if it never came."""
    port, data = free_port(), fresh_dir(f"{system.name}-startup{i}")
    logf = open(data.parent / f"{system.name}-startup{i}.log", "w")
    cmd = system.command(port, data / "data")
    t0 = time.perf_counter()
    p = system.spawn(cmd, system.env, logf)
    t = None
    while time.perf_counter() - t0 < 10:  # tight poll, bounded
        if http_status(port, system.ready_path, timeout=0.5) == 200:
            t = time.perf_counter() - t0
            break
        if p.poll() is not None:
            break
        time.sleep(0.0002)
    terminate([p])
    logf.close()
    shutil.rmtree(data, ignore_errors=True)
    if t is not None:
        Path(logf.name).unlink(missing_ok=True)
    return t


def startup_check(system: MoscowTime, starts: int) -> dict:
    samples = []
    for i in range(starts):
        t = _time_one_start(system, i)
        if t is None:
            raise RuntimeError(f"{system.name} never answered 200 on {system.ready_path}")
        samples.append(round(t * 1e3, 3))
    return {"starts": starts, "samples_ms": samples, "median_ms": round(statistics.median(samples), 3),
            "path": system.ready_path}


def startup_from_runs(system: System, runs: list[dict]) -> dict | None:
    """A peer's start-up: spawn to first 200 on its ready path, as measured in every run."""
    ts = [r["ready_after_ms"] for r in runs if r["system"] == system.name]
    if not ts:
        return None
    return {"starts": len(ts), "samples_ms": ts, "path": system.ready_path,
            "median_ms": round(statistics.median(ts), 1),
            "note": "5 ms poll during the benchmark runs"}
