"""Process sampling from /proc: process trees, peak RSS, CPU time and the machine's load.

The server under test may be several processes (gunicorn's master and workers, plus
redis-server), so everything here works on process trees given by their root pids.
"""

from __future__ import annotations

import os
import threading
import time

from moscow_bench.workspace import log

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rfind(")") + 2:].split()


def _all_ppids() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        fields = _stat_fields(d)
        if fields is not None:
            out[int(d)] = int(fields[1])
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
    """One ``kB`` line of /proc/<pid>/status (``VmHWM``, ``VmRSS``), 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 if it is gone)."""
    fields = _stat_fields(pid)
    return 0 if fields is None else int(fields[11]) + int(fields[12])


def machine_ticks() -> tuple[int, int, int]:
    """All CPUs' time from /proc/stat: (user+nice+system, irq+softirq, steal). Interrupt time
    (loopback TCP runs in softirq) is not charged to any process, so it is kept apart."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2], v[5] + v[6], v[7]


def machine_busy_ticks() -> int:
    return sum(machine_ticks())


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


class Sampler:
    """Polls the process trees for peak RSS (sum of VmHWM) while load runs."""

    def __init__(self, roots: list[int], interval: float = 0.1):
        self.roots, self.interval = roots, interval
        self.peak_hwm = 0
        self.peak_rss = 0
        self.procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
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
        self._thread.start()
        return self

    def stop(self) -> dict:
        """Stops sampling; the peaks, the trees' CPU time and the whole machine's since start()."""
        self._stop.set()
        self._thread.join()
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
