#!/usr/bin/env python3
"""The physical limit of a counter that fsyncs once per visit, on this disk.

One thread repeats the durable-write cycle a file counter needs:
write a temp file + fsync it + rename it over ``visits`` + fsync the folder,
for a fixed time, and reports cycles per second and the distribution of
one cycle's duration (its median is "one durable write").

Usage: fsync_probe.py DIR SECONDS   (prints one JSON object)
"""

import json
import os
import statistics
import sys
import time


def probe(folder: str, seconds: float) -> dict:
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, "visits")
    tmp = os.path.join(folder, ".visits.tmp-probe")
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    times = []
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= deadline:
                break
            n += 1
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, f"{n}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, target)
            os.fsync(dfd)
            times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
    finally:
        os.close(dfd)
    times.sort()

    def pct(p: float) -> float:
        return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))]

    with open(target) as f:
        final = int(f.read())
    return {
        "cycle": "write temp + fsync + rename + fsync dir",
        "seconds": elapsed,
        "cycles": len(times),
        "cycles_per_sec": len(times) / elapsed,
        "median_ms": statistics.median(times) * 1e3,
        "mean_ms": statistics.fmean(times) * 1e3,
        "p90_ms": pct(90) * 1e3,
        "p99_ms": pct(99) * 1e3,
        "max_ms": times[-1] * 1e3,
        "min_ms": times[0] * 1e3,
        "final_value_ok": final == len(times),
        "_times": times,
    }


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    res = probe(sys.argv[1], float(sys.argv[2]))
    res.pop("_times")
    print(json.dumps(res))
