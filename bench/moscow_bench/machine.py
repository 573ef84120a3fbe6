"""The description of the machine, the tools and the settings stored as ``meta`` with every run."""

from __future__ import annotations

import os
import platform
import subprocess
from argparse import Namespace
from datetime import datetime, timezone
from pathlib import Path

from moscow_bench.workspace import ROOT, TMP, VENV, loadavg


def command_output(cmd: list[str]) -> str:
    """A tool's standard output, stripped; empty if it is missing or fails."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def describe_binary(binary: Path) -> tuple[str, str | None]:
    """The binary's path (relative to the repository when inside it) and its modification time."""
    name = str(binary.relative_to(ROOT)) if binary.is_relative_to(ROOT) else str(binary)
    mtime = (datetime.fromtimestamp(binary.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
             if binary.exists() else None)
    return name, mtime


def meta(options: Namespace, binary: Path, started: datetime) -> dict:
    TMP.mkdir(parents=True, exist_ok=True)
    binary_name, binary_mtime = describe_binary(binary)
    return {
        "started_utc": started.isoformat(timespec="seconds"),
        "mode": options.mode,
        "duration_s": options.duration,
        "warmup_s": options.warmup,
        "concurrency": options.concurrency_levels,
        "peer_workers": options.peer_workers,
        "git_commit": command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "binary": binary_name,
        "binary_mtime": binary_mtime,
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "data_fs": command_output(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", str(TMP)]),
        "load_generator": command_output([options.oha, "--version"]),
        "redis": command_output(["redis-server", "--version"]),
        "python": platform.python_version(),
        "gunicorn": command_output([str(VENV / "bin" / "gunicorn"), "--version"]),
        "loadavg_at_start": loadavg(),
        "pinning": "none: load generator and servers share all cores",
        "noisy_retries": options.noisy_retries,
        "noise_limit": options.noise_limit,
        "rust_log": options.rust_log or "unset (service default: info, one JSON log line per request)",
    }
