"""The no-skip plugin every pytest stage loads (tests/pyhelpers/no_skip.py): under
REQUIRE_PRIVILEGED=1 a skipped test fails naming why; without it, it is a skip, counted."""
from __future__ import annotations

import os
import subprocess
import sys

from pyhelpers.tools import ROOT

SKIPPING = '''
import pytest

def test_needs_a_tool():
    pytest.skip("no such tool")

@pytest.mark.skipif(True, reason="not on this machine")
def test_marked():
    pass

def test_runs():
    pass
'''


def run_pytest(tmp_path, required: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k not in ("REQUIRE_PRIVILEGED", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(ROOT / "tests")
    if required:
        env["REQUIRE_PRIVILEGED"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pyhelpers.no_skip",
                           "--rootdir", str(tmp_path), str(tmp_path)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_under_require_privileged_a_skip_fails_naming_what_is_missing(tmp_path):
    run = run_pytest(tmp_path, required=True)
    assert run.returncode == 1, run.stdout
    assert "no such tool" in run.stdout and "not on this machine" in run.stdout, run.stdout
    # A skip in the test body fails it; a skip mark fails its setup (an error).
    assert "1 failed, 1 passed, 1 error" in run.stdout, run.stdout
    assert "skipped: 0" in run.stdout, run.stdout


def test_without_it_a_skip_is_a_counted_skip(tmp_path):
    run = run_pytest(tmp_path, required=False)
    assert run.returncode == 0, run.stdout
    assert "skipped: 2" in run.stdout, run.stdout
