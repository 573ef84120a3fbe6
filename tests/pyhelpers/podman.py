"""Containers and volumes for the container stage's tests, run with podman as the chart's pod runs.

scripts/test-container installs podman, writes its containers.conf (CONTAINERS_CONF) and builds
the image before any test uses these. Every wait is for an event (readiness, a log line, an exit)
with a deadline that fires only when the event never comes.
"""
from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyhelpers.live import http_get, http_status, wait_until

# What the chart's securityContext gives the pod: read-only root file system, no capabilities,
# no privilege escalation.
POD_FLAGS = ["--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL",
             "--security-opt=no-new-privileges"]


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run podman; with `check`, a non-zero exit fails the test with podman's own words."""
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}: "
                             f"{(done.stderr or done.stdout).strip()[-1500:]}")
    return done


@dataclass
class Volume:
    name: str

    def create(self) -> Volume:
        podman("volume", "create", self.name)
        return self

    @property
    def mountpoint(self) -> Path:
        return Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", self.name).stdout.strip())

    def remove(self) -> None:
        podman("volume", "rm", "-f", self.name, check=False)


@dataclass
class Container:
    """One container of the image, named `name`, with the pod's flags."""

    name: str
    image: str
    volume: Volume | None = None
    port: int | None = None          # where the service answers on this machine
    publish: bool = True             # publish 127.0.0.1:<port> -> 8000 (not with --network=host)
    env: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, *command: str, detach: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        args = ["run", "--name", self.name, *POD_FLAGS, *self.extra, "-e", f"POD_NAME={self.name}"]
        if detach:
            args.insert(1, "-d")
        if self.volume:
            args += ["-v", f"{self.volume.name}:/data"]
        if self.port and self.publish:
            args += ["-p", f"127.0.0.1:{self.port}:8000"]
        for key, value in self.env.items():
            args += ["-e", f"{key}={value}"]
        return podman(*args, self.image, *command, check=detach, timeout=timeout)

    def running(self) -> bool:
        done = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return done.stdout.strip() == "true"

    def wait_ready(self, timeout: float = 60) -> None:
        """Until GET /readyz answers 200, as the kubelet's readiness probe waits."""
        def ready() -> bool:
            if not self.running():
                raise AssertionError(f"{self.name} stopped before it was ready: {self.logs()[-1500:]}")
            return http_status(f"{self.url}/readyz", timeout=2) == 200
        wait_until(ready, timeout, f"{self.name} to be ready")

    def wait_log(self, text: str, timeout: float = 30) -> None:
        wait_until(lambda: text in self.logs(), timeout, f"{self.name} to log {text!r}")

    def visit(self) -> int:
        """GET / once; the visit number it answered (X-Visit-Number)."""
        with urllib.request.urlopen(f"{self.url}/", timeout=10) as answer:
            assert answer.status == 200, f"GET / answered {answer.status}"
            return int(answer.headers["X-Visit-Number"])

    def get(self, path: str) -> str:
        """The body of GET `path` (which must answer 200)."""
        answer = http_get(f"{self.url}{path}", timeout=10)
        assert answer.status == 200, f"GET {path} answered {answer.status}: {answer.body[:200]}"
        return answer.body

    def exec(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return podman("exec", self.name, *command, check=check)

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def stop(self, grace: int = 10) -> int:
        """SIGTERM, SIGKILL after `grace` seconds (as the kubelet does); returns the exit code."""
        podman("stop", "-t", str(grace), self.name, timeout=grace + 60)
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip())

    def remove(self) -> None:
        podman("rm", "-f", "-v", "-t", "0", self.name, check=False)


def unique(prefix: str) -> str:
    """A name no other run uses at the same time."""
    return f"{prefix}-{time.monotonic_ns() % 10**9}"


@pytest.fixture(scope="session")
def image() -> str:
    """The image scripts/test-container built (MOSCOW_TIME_IMAGE); a conftest imports this fixture."""
    name = os.environ.get("MOSCOW_TIME_IMAGE")
    assert name, "MOSCOW_TIME_IMAGE is not set: run these through scripts/test-container"
    podman("image", "exists", name)
    return name
