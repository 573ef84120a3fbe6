#!/usr/bin/env python3
"""The moscow-time benchmark suite (run it through ``bench/run``).

For every system under test and every scenario x concurrency it starts the
system on 127.0.0.1 with a fresh data folder, waits until it answers, warms
it up, drives it with ``oha`` for a fixed time (``-w``: requests still in
flight at the deadline are waited for, so every request the server counted
is also counted by the client), samples the server's peak RSS and CPU time
from /proc, reads the durable count, and stops it. Then it runs the
visit-number distinctness check, the startup-time check and the fsync probe,
writes ``bench/results/run-<time>.json`` (+ ``latest.json``) and calls
``bench/report.py`` to render ``docs/benchmarks.md`` and its charts.

Only 127.0.0.1 is ever targeted; every loop is bounded in time or count.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOOLS = ROOT / ".tools"
RESULTS = HERE / "results"
TMP = RESULTS / "tmp"
VENV = TOOLS / "bench-venv"
CLK_TCK = os.sysconf("SC_CLK_TCK")

sys.path.insert(0, str(HERE))
import fsync_probe  # noqa: E402

SCENARIOS = {
    "healthz": "/healthz",
    "visit": "/",
    "visits": "/visits",
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------- /proc ----

def _all_ppids() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        out[int(d)] = int(rest[1])
    return out


def tree(roots: list[int]) -> list[int]:
    """The root pids and all their live descendants."""
    ppids = _all_ppids()
    kids: dict[int, list[int]] = {}
    for pid, ppid in ppids.items():
        kids.setdefault(ppid, []).append(pid)
    seen, todo = [], [r for r in roots if r in ppids]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(kids.get(p, []))
    return seen


def status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_ticks() -> tuple[int, int, int]:
    """All CPUs' time from /proc/stat: (user+nice+system, irq+softirq, steal). Interrupt time
    (loopback TCP runs in softirq) is not charged to any process, so it is kept apart."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2], v[5] + v[6], v[7]


def machine_busy_ticks() -> int:
    return sum(machine_ticks())


def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return 0
    rest = s[s.rfind(")") + 2:].split()
    return int(rest[11]) + int(rest[12])  # utime + stime


class Sampler:
    """Polls the process trees for peak RSS (sum of VmHWM) while load runs."""

    def __init__(self, roots: list[int], interval: float = 0.1):
        self.roots, self.interval = roots, interval
        self.peak_hwm = 0
        self.peak_rss = 0
        self.procs = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self.cpu0 = {p: cpu_ticks(p) for p in tree(roots)}
        self.busy0 = machine_ticks()

    def sample(self) -> None:
        pids = tree(self.roots)
        self.procs = max(self.procs, len(pids))
        self.peak_hwm = max(self.peak_hwm, sum(status_kib(p, "VmHWM") for p in pids))
        self.peak_rss = max(self.peak_rss, sum(status_kib(p, "VmRSS") for p in pids))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> "Sampler":
        self.sample()
        self._t.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._t.join()
        self.sample()
        pids = tree(self.roots)
        cpu = sum(cpu_ticks(p) - self.cpu0.get(p, 0) for p in pids) / CLK_TCK
        busy = [(b - a) / CLK_TCK for a, b in zip(self.busy0, machine_ticks())]
        return {
            "machine_process_cpu_s": round(busy[0], 3),
            "machine_irq_cpu_s": round(busy[1], 3),
            "machine_steal_s": round(busy[2], 3),
            "peak_rss_kib": self.peak_hwm,
            "peak_rss_sampled_kib": self.peak_rss,
            "processes": self.procs,
            "cpu_s": round(cpu, 3),
        }


# --------------------------------------------------------------- helpers ----

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """One raw HTTP/1.1 GET on loopback; the status code, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(256)
                if not chunk:
                    break
                buf += chunk
        return int(buf.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return None


def wait_ready(port: int, path: str, proc_alive, timeout: float = 30.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if not proc_alive():
            raise RuntimeError("server exited during startup")
        if http_status(port, path) == 200:
            return time.perf_counter() - t0
        time.sleep(0.005)
    raise RuntimeError(f"no 200 from {path} on port {port} within {timeout}s")


def fresh_dir(name: str) -> Path:
    d = TMP / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def terminate(procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    """SIGTERM our own children (each leads its own process group), then SIGKILL."""
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"pid {p.pid} ignored SIGTERM; killing its group")
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)


# --------------------------------------------------------------- systems ----

class Running:
    def __init__(self, system: "System", procs, port, data, logs):
        self.system, self.procs, self.port, self.data, self.logs = system, procs, port, data, logs

    @property
    def roots(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def count(self) -> int:
        return self.system.read_count(self)

    def stop(self) -> None:
        terminate(list(reversed(self.procs)))
        for f in self.logs:
            f.close()


class System:
    name = ""
    label = ""
    ready_path = "/healthz"
    number_re: re.Pattern | None = None  # where a peer prints the visit number

    def describe(self) -> dict:
        return {"label": self.label, "description": self.__doc__.strip()}

    def _spawn(self, cmd, env, logf, cwd=None) -> subprocess.Popen:
        return subprocess.Popen(
            cmd, env={**os.environ, **env}, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def start(self, tag: str) -> Running:
        raise NotImplementedError

    def start_ready(self, tag: str) -> tuple[Running, float]:
        r = self.start(tag)
        try:
            t = wait_ready(r.port, self.ready_path, r.alive)
        except Exception:
            r.stop()
            for f in r.logs:
                try:
                    sys.stderr.write(Path(f.name).read_text()[-3000:])
                except OSError:
                    pass
            raise
        return r, t

    @staticmethod
    def read_file_count(path: Path) -> int:
        try:
            txt = path.read_text().strip()
            return int(txt) if txt else 0
        except FileNotFoundError:
            return 0


class MoscowTime(System):
    """The service under test (target/release/moscow-time), default settings: group commit on."""

    ready_path = "/readyz"

    def __init__(self, binary: Path, max_batch: int | None = None, rust_log: str | None = None):
        self.binary, self.max_batch = binary, max_batch
        self.env = {"RUST_LOG": rust_log} if rust_log else {}
        if max_batch is None:
            self.name, self.label = "moscow-time", "moscow-time"
        else:
            self.name = f"moscow-time-batch{max_batch}"
            self.label = f"moscow-time --max-batch {max_batch}"
            self.__doc__ = (f"The same binary with --max-batch {max_batch}: group commit switched off, "
                            "one durable write (temp + fsync + rename + fsync dir) per visit.")

    def describe(self) -> dict:
        d = super().describe()
        d["binary"] = str(self.binary)
        return d

    def command(self, port: int, data: Path) -> list[str]:
        cmd = [str(self.binary), "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(data), "--log-format", "json", "--instance", "bench"]
        if self.max_batch is not None:
            cmd += ["--max-batch", str(self.max_batch)]
        return cmd

    def start(self, tag: str) -> Running:
        port, data = free_port(), fresh_dir(f"{self.name}-{tag}")
        logf = open(data.parent / f"{self.name}-{tag}.log", "w")
        p = self._spawn(self.command(port, data / "data"), self.env, logf)
        return Running(self, [p], port, data / "data", [logf])

    def read_count(self, r: Running) -> int:
        return self.read_file_count(r.data / "visits")

    PERSIST = ("moscow_time_persist_duration_seconds_sum", "moscow_time_persist_duration_seconds_count",
               "moscow_time_persist_batch_size_sum", "moscow_time_persist_batch_size_count")

    def persist_stats(self, r: Running) -> dict | None:
        """The service's own group-commit counters from /metrics (read once before and after a run)."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
        except (OSError, http.client.HTTPException):
            return None
        out = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in self.PERSIST:
                out[parts[0]] = float(parts[1])
        return out if len(out) == len(self.PERSIST) else None


class FlaskFile(System):
    """Peer 1, the typical course app: Flask under gunicorn (sync workers); every page view
    reads `visits`, adds one and writes it back in place (no lock, no rename, no fsync)."""

    name, label = "flask-file", "Flask+gunicorn file counter"
    number_re = re.compile(rb"Visits: (\d+)")

    def __init__(self, workers: int):
        self.workers = workers
        self.label = f"Flask+gunicorn ({workers} workers) file counter"

    def describe(self) -> dict:
        return {**super().describe(), "workers": self.workers}

    def start(self, tag: str) -> Running:
        port, data = free_port(), fresh_dir(f"{self.name}-{tag}")
        logf = open(data.parent / f"{self.name}-{tag}.log", "w")
        p = self._spawn(
            [str(VENV / "bin" / "gunicorn"), "-w", str(self.workers), "-b", f"127.0.0.1:{port}", "app:app"],
            {"DATA_DIR": str(data / "data")}, logf, cwd=HERE / "peers" / "flask_file")
        return Running(self, [p], port, data / "data", [logf])

    def read_count(self, r: Running) -> int:
        return self.read_file_count(r.data / "visits")


class FlaskRedis(System):
    """Peer 2, the Docker Compose quick-start counter: Flask under gunicorn (sync workers),
    redis-py `INCR hits` against a local redis-server with appendonly yes + appendfsync always."""

    name, label = "flask-redis", "Flask+Redis (appendfsync always)"
    number_re = re.compile(rb"seen (\d+) times")

    def __init__(self, workers: int):
        self.workers = workers
        self.label = f"Flask+gunicorn ({workers} workers) + Redis appendfsync always"

    def describe(self) -> dict:
        return {**super().describe(), "workers": self.workers}

    def start(self, tag: str) -> Running:
        port, rport = free_port(), free_port()
        data = fresh_dir(f"{self.name}-{tag}")
        (data / "redis").mkdir()
        conf = (HERE / "peers" / "flask_redis" / "redis.conf.in").read_text()
        conf = conf.replace("@PORT@", str(rport)).replace("@DIR@", str(data / "redis"))
        (data / "redis.conf").write_text(conf)
        rlog = open(data.parent / f"{self.name}-{tag}.redis.log", "w")
        rp = self._spawn(["redis-server", str(data / "redis.conf")], {}, rlog)
        t0 = time.monotonic()
        while True:  # until redis answers PING (bounded: 10 s)
            try:
                with socket.create_connection(("127.0.0.1", rport), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if rp.poll() is not None or time.monotonic() - t0 > 10:
                rlog.close()
                raise RuntimeError("redis-server did not start: " + Path(rlog.name).read_text()[-2000:])
            time.sleep(0.01)
        glog = open(data.parent / f"{self.name}-{tag}.log", "w")
        gp = self._spawn(
            [str(VENV / "bin" / "gunicorn"), "-w", str(self.workers), "-b", f"127.0.0.1:{port}", "app:app"],
            {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(rport)}, glog, cwd=HERE / "peers" / "flask_redis")
        r = Running(self, [rp, gp], port, data, [rlog, glog])
        r.redis_port = rport
        return r

    def read_count(self, r: Running) -> int:
        with socket.create_connection(("127.0.0.1", r.redis_port), timeout=5) as s:
            s.sendall(b"GET hits\r\n")
            buf = b""
            while not (buf.startswith(b"$-1\r\n") or buf.count(b"\r\n") >= 2):
                chunk = s.recv(64)
                if not chunk:
                    break
                buf += chunk
        if buf.startswith(b"$-1"):
            return 0
        return int(buf.split(b"\r\n")[1])


# ------------------------------------------------------------------- oha ----

def run_oha(oha: str, port: int, path: str, conc: int, seconds: float) -> dict:
    cmd = [oha, f"http://127.0.0.1:{port}{path}", "-c", str(conc), "-z", f"{seconds}s", "-w",
           "-t", "30s", "--no-tui", "--output-format", "json"]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"oha failed ({out.returncode}): {out.stderr[-2000:]}")
    j = json.loads(out.stdout)
    j["_wall_s"] = wall
    j["_cpu_s"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return j


def summarize_oha(j: dict) -> dict:
    s = j["summary"]
    codes = {str(k): v for k, v in (j.get("statusCodeDistribution") or {}).items()}
    errs = j.get("errorDistribution") or {}
    ok = codes.get("200", 0)
    total = sum(codes.values()) + sum(errs.values())
    lp = j.get("latencyPercentiles") or {}

    def ms(v):
        return None if v is None else round(v * 1e3, 4)

    return {
        "requests": total,
        "ok_200": ok,
        "non_200": sum(v for k, v in codes.items() if k != "200"),
        "transport_errors": sum(errs.values()),
        "errors": total - ok,
        "error_kinds": errs,
        "status_codes": codes,
        "elapsed_s": round(s["total"], 4),
        "rps": round(total / s["total"], 1) if s["total"] else 0.0,
        "latency_ms": {
            "p50": ms(lp.get("p50")), "p90": ms(lp.get("p90")), "p99": ms(lp.get("p99")),
            "p99.9": ms(lp.get("p99.9")), "max": ms(s.get("slowest")), "mean": ms(s.get("average")),
        },
        "loadgen_cpu_s": round(j["_cpu_s"], 3),
    }


# -------------------------------------------------------- distinctness ----

def distinct_check(system: System, n: int, conc: int) -> dict:
    """A bounded concurrent client of our own that keeps every visit number."""
    r, _ = system.start_ready("distinct")
    try:
        before = r.count()
        numbers: list[int] = []
        statuses: dict[int, int] = {}
        missing = 0
        lock = threading.Lock()
        remaining = [n]

        def worker() -> None:
            nonlocal missing
            conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=30)
            while True:
                with lock:
                    if remaining[0] <= 0:
                        break
                    remaining[0] -= 1
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
                    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=30)
                    status, num, body = -1, None, b""
                if num is None and system.number_re is not None and status == 200:
                    m = system.number_re.search(body)
                    num = m.group(1) if m else None
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 200:
                        if num is None:
                            missing += 1
                        else:
                            numbers.append(int(num))
            conn.close()

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(conc) as ex:
            for f in [ex.submit(worker) for _ in range(conc)]:
                f.result()
        elapsed = time.perf_counter() - t0
        after = r.count()
    finally:
        r.stop()
    shutil.rmtree(TMP / f"{system.name}-distinct", ignore_errors=True)
    for f in r.logs:
        Path(f.name).unlink(missing_ok=True)
    ok = statuses.get(200, 0)
    uniq = len(set(numbers))
    expected = set(range(before + 1, before + ok + 1))
    return {
        "requests": n,
        "concurrency": conc,
        "elapsed_s": round(elapsed, 3),
        "ok_200": ok,
        "statuses": {str(k): v for k, v in statuses.items()},
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


def startup_check(system: System, starts: int) -> dict:
    samples = []
    for i in range(starts):
        port, data = free_port(), fresh_dir(f"{system.name}-startup{i}")
        logf = open(data.parent / f"{system.name}-startup{i}.log", "w")
        cmd = system.command(port, data / "data")
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True, env={**os.environ, **system.env})
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
        if t is None:
            raise RuntimeError(f"{system.name} never answered 200 on {system.ready_path}")
        samples.append(round(t * 1e3, 3))
    return {"starts": starts, "samples_ms": samples, "median_ms": round(statistics.median(samples), 3),
            "path": system.ready_path}


# ----------------------------------------------------------------- probe ----

def run_probe(seconds: float, tag: str) -> tuple[dict, list[float]]:
    folder = fresh_dir(f"probe-{tag}")
    res = fsync_probe.probe(str(folder), seconds)
    return res, res.pop("_times")


# --------------------------------------------------------------- targets ----

def evaluate(doc: dict) -> list[dict]:
    runs = doc["runs"]

    def get(system, scen, c):
        for r in runs:
            if r["system"] == system and r["scenario"] == scen and r["concurrency"] == c:
                return r
        return None

    T = []

    def target(key, title, value, limit, cmp, detail, unit=""):
        ok = None if value is None or limit is None else (value >= limit if cmp == ">=" else value <= limit)
        T.append({"key": key, "title": title, "value": value, "limit": limit, "cmp": cmp,
                  "pass": ok, "status": {True: "PASS", False: "MISS", None: "N/A"}[ok],
                  "detail": detail, "unit": unit})

    visit = get("moscow-time", "visit", 64)
    health = get("moscow-time", "healthz", 64)
    probe = doc.get("probe") or {}
    v = visit["rps"] if visit else None
    if visit and health:
        target("visit_vs_healthz", "GET / at c=64 >= 0.5 x GET /healthz of the same server",
               round(v / health["rps"], 3), 0.5, ">=",
               f"{v:,.0f} vs {health['rps']:,.0f} req/s", "x")
    if visit and probe:
        target("visit_vs_fsync_ceiling", "GET / at c=64 >= 10 x one-fsync-per-visit ceiling",
               round(v / probe["cycles_per_sec"], 2), 10, ">=",
               f"{v:,.0f} req/s vs {probe['cycles_per_sec']:,.0f} cycles/s", "x")
        target("p99_vs_durable_write", "p99 of GET / at c=64 <= 3 x median durable write",
               round(visit["latency_ms"]["p99"] / probe["median_ms"], 2), 3, "<=",
               f"p99 {visit['latency_ms']['p99']:.3f} ms vs median write {probe['median_ms']:.3f} ms", "x")
    for peer, need in (("flask-file", 20), ("flask-redis", 10)):
        pr = get(peer, "visit", 64)
        if visit and pr:
            target(f"vs_{peer}", f"GET / at c=64 >= {need} x {doc['systems'][peer]['label']}",
                   round(v / pr["rps"], 2) if pr["rps"] else None, need, ">=",
                   f"{v:,.0f} vs {pr['rps']:,.0f} req/s", "x")
    ours = [r for r in runs if r["system"] == "moscow-time" and r["scenario"] == "visit"]
    if ours:
        lost = {r["concurrency"]: r["lost"] for r in ours}
        d = doc.get("distinct", {}).get("moscow-time")
        bad = sum(abs(x) for x in lost.values()) + (0 if d is None or d["all_distinct"] else 1)
        detail = "lost per concurrency " + ", ".join(f"c={c}: {x}" for c, x in sorted(lost.items()))
        if d:
            detail += (f"; distinctness check: {d['distinct_numbers']}/{d['ok_200']} distinct, "
                       f"{d['duplicates']} duplicates, contiguous={d['contiguous']}")
        target("zero_lost", "zero lost visits at every concurrency (and all numbers distinct)",
               bad, 0, "<=", detail, "")
    c256 = [r for r in runs if r["system"] == "moscow-time" and r["concurrency"] == 256]
    if c256:
        worst = max(c256, key=lambda r: r["peak_rss_kib"])
        target("rss_c256", "peak RSS under c=256 <= 20 MiB",
               round(worst["peak_rss_kib"] / 1024, 2), 20, "<=",
               f"max over scenarios at c=256 (worst: {worst['scenario']})", "MiB")
    st = doc.get("startup", {}).get("moscow-time")
    if st:
        target("startup", "spawn to first 200 from /readyz <= 100 ms (median)",
               st["median_ms"], 100, "<=", f"samples {st['samples_ms']} ms", "ms")
    return T


# ------------------------------------------------------------------ main ----

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "moscow-time"))
    ap.add_argument("--oha", default=str(TOOLS / "bin" / "oha"))
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of load per run")
    ap.add_argument("--warmup", type=float, default=1.5, help="seconds of warm-up load per run")
    ap.add_argument("--concurrency", default="1,16,64,256")
    ap.add_argument("--scenarios", default="healthz,visit,visits")
    ap.add_argument("--systems", default="moscow-time,moscow-time-batch1,flask-file,flask-redis")
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
    a = ap.parse_args()

    concs = [int(x) for x in a.concurrency.split(",") if x]
    scens = [s for s in a.scenarios.split(",") if s]
    for s in scens:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s}")
    binary = Path(a.binary).resolve()
    all_systems = {
        "moscow-time": lambda: MoscowTime(binary, rust_log=a.rust_log),
        "moscow-time-batch1": lambda: MoscowTime(binary, max_batch=1, rust_log=a.rust_log),
        "flask-file": lambda: FlaskFile(a.peer_workers),
        "flask-redis": lambda: FlaskRedis(a.peer_workers),
    }
    systems = [all_systems[s]() for s in a.systems.split(",") if s]
    if any(isinstance(s, MoscowTime) for s in systems) and not os.access(binary, os.X_OK):
        sys.exit(f"no service binary at {binary} (build it: cargo build --release)")

    TMP.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    t_start = time.monotonic()
    doc: dict = {"meta": meta(a, binary, started), "systems": {s.name: s.describe() for s in systems}}
    doc["systems"].update({s.name: {**doc["systems"][s.name],
                                    **({"command": s.command(0, Path("$DATA_DIR"))} if isinstance(s, MoscowTime) else {})}
                           for s in systems})

    if a.wait_quiet > 0:
        wait_quiet(a.wait_quiet)
        doc["meta"]["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    log(f"fsync probe ({a.probe_seconds}s, before load)")
    p1, times1 = run_probe(a.probe_seconds, "before")
    log(f"  {p1['cycles_per_sec']:.0f} cycles/s, median {p1['median_ms']:.3f} ms")

    runs = []
    adjacent = {"times": [], "seconds": 0.0}  # every short probe, also of repeated attempts
    total = len(systems) * len(scens) * len(concs)
    i = 0
    for s in systems:
        for scen in scens:
            for c in concs:
                i += 1
                runs.append(run_with_retries(a, s, scen, c, i, total, adjacent))
    doc["runs"] = runs

    doc["distinct"] = {}
    for s in systems:
        if a.distinct_requests > 0:
            log(f"distinctness check: {s.name}, {a.distinct_requests} GET / at c=64, own client")
            d = distinct_check(s, a.distinct_requests, 64)
            log(f"  {d['ok_200']} x 200, {d['distinct_numbers']} distinct, {d['duplicates']} dup, "
                f"lost {d['lost']}, contiguous={d['contiguous']}")
            doc["distinct"][s.name] = d

    doc["startup"] = {}
    for s in systems:
        if isinstance(s, MoscowTime) and a.startup_runs > 0:
            log(f"startup: {s.name}, {a.startup_runs} starts, spawn -> first 200 on /readyz")
            doc["startup"][s.name] = startup_check(s, a.startup_runs)
            log(f"  median {doc['startup'][s.name]['median_ms']} ms")
    # peers: time from spawn to first 200 on /healthz, as measured in every run
    for s in systems:
        if not isinstance(s, MoscowTime):
            ts = [r["ready_after_ms"] for r in runs if r["system"] == s.name]
            if ts:
                doc["startup"][s.name] = {"starts": len(ts), "samples_ms": ts, "path": s.ready_path,
                                          "median_ms": round(statistics.median(ts), 1),
                                          "note": "5 ms poll during the benchmark runs"}

    log(f"fsync probe ({a.probe_seconds}s, after load)")
    p2, times2 = run_probe(a.probe_seconds, "after")
    log(f"  {p2['cycles_per_sec']:.0f} cycles/s, median {p2['median_ms']:.3f} ms")
    times = sorted(times1 + times2 + adjacent["times"])
    adj_secs = adjacent["seconds"]
    secs = p1["seconds"] + p2["seconds"] + adj_secs
    doc["probe"] = {
        "pooled": "before + after + the short probe before every GET / run",
        "adjacent_seconds": round(adj_secs, 3),
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
    for d in TMP.glob("probe-*"):
        shutil.rmtree(d, ignore_errors=True)

    doc["targets"] = evaluate(doc)
    doc["meta"]["suite_seconds"] = round(time.monotonic() - t_start, 1)
    doc["meta"]["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
    results = Path(a.results_dir).resolve()
    results.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = results / f"run-{stamp}.json"
    doc["meta"]["results_file"] = out.name
    out.write_text(json.dumps(doc, indent=1) + "\n")
    shutil.copyfile(out, results / "latest.json")
    log(f"results: {out} (and latest.json beside it)")

    print("\nTargets (ratios from this run):")
    for t in doc["targets"]:
        print(f"  {t['status']:4}  {t['title']}: {t['value']}{t['unit']} (limit {t['cmp']} {t['limit']}) -- {t['detail']}")
    if not a.no_report:
        # the committed report (docs/) only from runs kept in bench/results; others render beside their JSON
        docs = ROOT / "docs" if results == RESULTS.resolve() else results
        subprocess.run([sys.executable, str(HERE / "report.py"), str(out), str(docs)], check=True)
    log(f"suite took {doc['meta']['suite_seconds']:.0f}s")
    return 0


def wait_quiet(limit: float, cores: float = 0.25, window: float = 3.0) -> None:
    """Waits (at most `limit` seconds) until other tenants use < `cores` CPUs over `window` seconds."""
    t0 = time.monotonic()
    while True:
        b0 = machine_busy_ticks()
        time.sleep(window)
        used = (machine_busy_ticks() - b0) / CLK_TCK / window
        if used < cores:
            log(f"machine quiet ({used:.2f} CPUs busy)")
            return
        if time.monotonic() - t0 > limit:
            log(f"machine still busy ({used:.2f} CPUs) after {limit:.0f}s; running anyway")
            return
        log(f"waiting for a quiet machine: {used:.2f} CPUs busy elsewhere")


def run_with_retries(a, s: System, scen: str, c: int, i: int, total: int, probe_times: dict) -> dict:
    """Repeats a run that other tenants disturbed (their CPU above --noise-limit of the machine),
    at most --noisy-retries times, and keeps the least disturbed attempt."""
    limit = a.noise_limit * (os.cpu_count() or 1) * a.duration
    attempts = [one_run(a, s, scen, c, i, total, probe_times)]
    while attempts[-1]["other_cpu_s"] > limit and len(attempts) <= a.noisy_retries:
        log(f"  other processes used {attempts[-1]['other_cpu_s']:.1f} CPU-s (> {limit:.1f}): repeating the run")
        wait_quiet(20)
        attempts.append(one_run(a, s, scen, c, i, total, probe_times))
    best = min(attempts, key=lambda r: r["other_cpu_s"])
    best["attempts"] = len(attempts)
    best["other_cpu_s_per_attempt"] = [r["other_cpu_s"] for r in attempts]
    return best


def one_run(a, s: System, scen: str, c: int, i: int, total: int, probe_times: dict) -> dict:
    path = SCENARIOS[scen]
    tag = f"{scen}-c{c}"
    r, ready = s.start_ready(tag)
    near = None
    try:
        if a.warmup > 0:
            run_oha(a.oha, r.port, path, c, a.warmup)
        if scen == "visit" and a.adjacent_probe > 0:
            # the disk as it is right now (other tenants' I/O comes and goes): a short probe
            # while the server idles, right before its measured load
            near, times = run_probe(a.adjacent_probe, f"{s.name}-c{c}")
            probe_times["times"].extend(times)
            probe_times["seconds"] += near["seconds"]
        before = r.count()
        m0 = s.persist_stats(r) if isinstance(s, MoscowTime) else None
        sampler = Sampler(r.roots).start()
        j = run_oha(a.oha, r.port, path, c, a.duration)
        res = sampler.stop()
        after = r.count()
        m1 = s.persist_stats(r) if m0 else None
        alive = r.alive()
    finally:
        r.stop()
    summ = summarize_oha(j)
    row = {"system": s.name, "scenario": scen, "path": path, "concurrency": c,
           "duration_s": a.duration, **summ, **res,
           "count_before": before, "count_after": after,
           "counted": after - before,
           "lost": (before + summ["ok_200"] - after) if scen == "visit" else None,
           "ready_after_ms": round(ready * 1e3, 1), "server_alive_at_end": alive}
    if near:
        row["probe_adjacent"] = {k: round(near[k], 4) for k in ("seconds", "cycles_per_sec", "median_ms", "p99_ms")}
    # CPU the rest of the machine used meanwhile (other tenants, plus this harness): noise indicator
    row["other_cpu_s"] = round(max(0.0, row["machine_process_cpu_s"] - row["cpu_s"] - row["loadgen_cpu_s"]), 2)
    row["loadavg_1m_at_end"] = float(open("/proc/loadavg").read().split()[0])
    row["server_cpu_us_per_req"] = round(1e6 * res["cpu_s"] / summ["requests"], 1) if summ["requests"] else None
    if m0 and m1 and scen == "visit":
        d = {k: m1[k] - m0[k] for k in m0}
        writes = d["moscow_time_persist_duration_seconds_count"]
        row["durable_writes"] = int(writes)
        row["writes_per_s"] = round(writes / summ["elapsed_s"], 1) if summ["elapsed_s"] else None
        row["mean_write_ms"] = round(1e3 * d["moscow_time_persist_duration_seconds_sum"] / writes, 4) if writes else None
        bc = d["moscow_time_persist_batch_size_count"]
        row["mean_batch"] = round(d["moscow_time_persist_batch_size_sum"] / bc, 2) if bc else None
    lost = "" if row["lost"] is None else f" lost={row['lost']}"
    if row.get("durable_writes") is not None:
        lost += f" writes/s={row['writes_per_s']} batch={row['mean_batch']} write={row['mean_write_ms']}ms"
    log(f"[{i}/{total}] {s.name:20} GET {path:9} c={c:<3} {row['rps']:>9,.0f} req/s  "
        f"p50={row['latency_ms']['p50']:.2f} p99={row['latency_ms']['p99']:.2f} ms  "
        f"err={row['errors']} rss={row['peak_rss_kib'] / 1024:.1f}MiB cpu={row['cpu_s']:.1f}s "
        f"oha={row['loadgen_cpu_s']:.1f}s other={row['other_cpu_s']:.1f}s irq={row['machine_irq_cpu_s']:.1f}s{lost}")
    shutil.rmtree(TMP / f"{s.name}-{tag}", ignore_errors=True)
    for f in r.logs:  # kept only when a run fails
        Path(f.name).unlink(missing_ok=True)
    return row


def _cmd_out(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def meta(a, binary: Path, started: datetime) -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    TMP.mkdir(parents=True, exist_ok=True)
    fs = _cmd_out(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", str(TMP)])
    return {
        "started_utc": started.isoformat(timespec="seconds"),
        "mode": a.mode,
        "duration_s": a.duration,
        "warmup_s": a.warmup,
        "concurrency": [int(x) for x in a.concurrency.split(",") if x],
        "peer_workers": a.peer_workers,
        "git_commit": _cmd_out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "binary": str(binary.relative_to(ROOT)) if binary.is_relative_to(ROOT) else str(binary),
        "binary_mtime": (datetime.fromtimestamp(binary.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
                         if binary.exists() else None),
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "data_fs": fs,
        "load_generator": _cmd_out([a.oha, "--version"]),
        "redis": _cmd_out(["redis-server", "--version"]),
        "python": platform.python_version(),
        "gunicorn": _cmd_out([str(VENV / "bin" / "gunicorn"), "--version"]),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "pinning": "none: load generator and servers share all cores",
        "noisy_retries": a.noisy_retries,
        "noise_limit": a.noise_limit,
        "rust_log": a.rust_log or "unset (service default: info, one JSON log line per request)",
    }


if __name__ == "__main__":
    sys.exit(main())
