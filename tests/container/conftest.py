"""The container stage's pytest modules (run by scripts/test-container, which installs podman,
writes its containers.conf and builds the image first, so the builds here come from its cache)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared helpers: tests/pyhelpers
