"""Fixtures of the rollout rehearsal: the binary under test and the figures report."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[2]
FIGURES: list[str] = []


@pytest.fixture(scope="session")
def binary(tmp_path_factory) -> Path:
    """$MOSCOW_TIME_BIN (default target/debug/moscow-time), pinned for the session.

    A hard link (or copy) keeps this exact build even if cargo replaces target/ meanwhile,
    so every restart in a rehearsal runs the same code, like one image tag.
    """
    source = Path(os.environ.get("MOSCOW_TIME_BIN", ROOT / "target" / "debug" / "moscow-time"))
    if not source.exists():
        pytest.fail(f"{source} is missing: run cargo build or set MOSCOW_TIME_BIN")
    pinned = tmp_path_factory.mktemp("bin") / "moscow-time"
    try:
        os.link(source, pinned)
    except OSError:
        shutil.copy2(source, pinned)
    return pinned


@pytest.fixture(scope="session")
def delay_supported(binary) -> bool:
    help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True).stdout
    return "--shutdown-delay-secs" in help_text


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("rollout rehearsal figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
