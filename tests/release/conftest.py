"""The release path's tests, run by scripts/test-container (pytest) with the image it built."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared helpers: tests/pyhelpers
from pyhelpers.podman import image  # noqa: E402,F401 - the fixture
