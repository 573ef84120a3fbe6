"""A pytest plugin: under REQUIRE_PRIVILEGED=1 (set by scripts/test) a skipped test fails.

Loaded with `-p pyhelpers.no_skip` (tests/ on the Python path). A test that would skip for lack of
a tool, root or a mount must not pass silently in CI; what it lacked is in the failure. Cases a
parametrization does not apply to are not generated at all rather than skipped.
"""
from __future__ import annotations

import os

import pytest


def required() -> bool:
    return os.environ.get("REQUIRE_PRIVILEGED") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if required() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under REQUIRE_PRIVILEGED=1 (a skip fails here): {reason}"


def pytest_terminal_summary(terminalreporter):
    skipped = len(terminalreporter.stats.get("skipped", []))
    terminalreporter.write_line(f"skipped: {skipped}")
