"""The container stage's pytest modules, run by scripts/test-container after it has installed
podman, written its containers.conf and built the image (MOSCOW_TIME_IMAGE names it; the quick
start's builds come from that build's cache)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared helpers: tests/pyhelpers
from pyhelpers import podman  # noqa: E402
from pyhelpers.live import free_port  # noqa: E402
from pyhelpers.podman import image  # noqa: E402,F401 - the fixture


@pytest.fixture
def containers():
    """Makes containers and volumes that are removed when the test ends, pass or fail."""
    made: list = []

    class Factory:
        def volume(self, prefix: str = "mt-test") -> podman.Volume:
            volume = podman.Volume(podman.unique(prefix)).create()
            made.append(volume)
            return volume

        def container(self, image: str, prefix: str = "mt-test", published: bool = True, **kw) -> podman.Container:
            c = podman.Container(podman.unique(prefix), image, port=free_port(), publish=published, **kw)
            made.append(c)
            return c

    yield Factory()
    for thing in reversed(made):
        thing.remove()
