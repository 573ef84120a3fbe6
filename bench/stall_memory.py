#!/usr/bin/env python3
"""The memory that visits held by a hung volume cost.

Starts the service with fault injection and a write timeout long enough to hold every visit,
counts one visit, injects a stall (every durable write blocks before its fsync, as on a hung
network volume), then opens N connections that each send one ``GET /`` and wait. Every visit is
held until the write timeout answers it 503. Reports the resident memory before the load and its
peak (the kernel's high-water mark, VmHWM), then clears the stall and checks the count: the
visits inside the stalled write are written (and counted as late), the queued ones are dropped.

Usage: stall_memory.py BINARY [--visits N] [--write-timeout-ms MS]   (prints one JSON object)

Only loopback is used. It raises its own open-file limit (the server inherits it) to hold N
connections. Not part of the tests: it states a figure, it does not judge one.
"""

import argparse
import asyncio
import http.client
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def request(port: int, method: str, path: str) -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def wait_for(check, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"stall_memory: {what} did not happen within {seconds} s")
        time.sleep(0.05)


def start(binary: str, data: str, log: str, write_timeout_ms: int) -> tuple[subprocess.Popen, int]:
    out = open(log, "wb")
    proc = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", "0", "--data-dir", data,
         "--log-format", "json", "--fault-injection", "--write-timeout-ms", str(write_timeout_ms)],
        stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn,moscow_time=info"},
    )
    port = 0

    def listening() -> bool:
        nonlocal port
        with open(log, "rb") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("message") == "listening":
                    port = int(entry["addr"].rsplit(":", 1)[1])
                    return True
        return proc.poll() is not None

    wait_for(listening, "the listening line")
    if not port:
        raise SystemExit(f"stall_memory: the service did not start; see {log}")
    return proc, port


async def held_visit(port: int, connecting: asyncio.Semaphore) -> int:
    async with connecting:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        await writer.drain()
    answer = await reader.read()
    writer.close()
    return int(answer.split(b" ", 2)[1])


async def hold(port: int, visits: int, pid: int) -> tuple[list[int], int]:
    # Connect a few hundred at a time: the listen backlog is finite, answers are not.
    connecting = asyncio.Semaphore(256)
    tasks = [asyncio.create_task(held_visit(port, connecting)) for _ in range(visits)]
    peak_sampled = 0
    while not all(t.done() for t in tasks):
        peak_sampled = max(peak_sampled, status_kib(pid, "VmRSS"))
        await asyncio.sleep(0.1)
    return [t.result() for t in tasks], peak_sampled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--visits", type=int, default=10_000)
    parser.add_argument("--write-timeout-ms", type=int, default=30_000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.visits + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    with tempfile.TemporaryDirectory(prefix="stall-memory-") as tmp:
        proc, port = start(args.binary, os.path.join(tmp, "data"), os.path.join(tmp, "log"),
                           args.write_timeout_ms)
        try:
            status, _, _ = request(port, "GET", "/")
            assert status == 200, status
            rss_before = status_kib(proc.pid, "VmRSS")
            hwm_before = status_kib(proc.pid, "VmHWM")
            assert request(port, "PUT", "/faults/stall")[0] == 200
            started = time.monotonic()
            statuses, peak_sampled = asyncio.run(hold(port, args.visits, proc.pid))
            held_for = time.monotonic() - started
            hwm_after = status_kib(proc.pid, "VmHWM")
            rss_held_answered = status_kib(proc.pid, "VmRSS")
            assert request(port, "DELETE", "/faults/stall")[0] == 200
            wait_for(lambda: request(port, "GET", "/readyz")[0] == 200, "readiness after the stall")
            status, headers, _ = request(port, "GET", "/")
            next_number = int(headers.get("x-visit-number", 0)) if status == 200 else None
            metrics = request(port, "GET", "/metrics")[2]
            late = next(float(line.split()[1]) for line in metrics.splitlines()
                         if line.startswith("moscow_time_visits_late_total "))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(json.dumps({
        "visits_held": args.visits,
        "write_timeout_ms": args.write_timeout_ms,
        "answered": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "seconds_until_all_answered": round(held_for, 1),
        "rss_before_kib": rss_before,
        "peak_rss_before_kib": hwm_before,
        "peak_rss_kib": hwm_after,
        "peak_rss_sampled_kib": peak_sampled,
        "rss_after_all_answered_kib": rss_held_answered,
        "peak_increase_kib": hwm_after - rss_before,
        "peak_increase_bytes_per_visit": round((hwm_after - rss_before) * 1024 / args.visits),
        "next_visit_number": next_number,
        # The visits inside the stalled write: answered 503, yet written when it returned.
        "visits_late_total": late,
        # One visit before the stall, the late ones, then the next visit: nothing else counted.
        "count_honest": next_number == 2 + late,
    }))


if __name__ == "__main__":
    sys.exit(main())
