"""Running real processes in a test: free ports, bounded waits, HTTP gets, stopping.

Every wait is bounded by a generous deadline that only fires when the awaited thing never happens;
none of them is a speed claim.
"""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


def wait_until(condition, timeout: float, what, interval: float = 0.1):
    """Poll condition() until it returns something truthy, and return that. `what` (a string, or
    a callable giving one) says in the failure what was awaited and what was seen last."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def port_free_on_all(port: int, addresses: list[str]) -> bool:
    for address in addresses:
        with socket.socket() as s:
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


def free_port(addresses: tuple[str, ...] | list[str] = ("127.0.0.1",)) -> int:
    """A port that was free a moment ago on every given address (as the same container port is
    on every pod IP); loopback by default."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port = s.getsockname()[1]
        if port_free_on_all(port, list(addresses[1:])):
            return port
    raise RuntimeError(f"no port free on all of {addresses}")


def free_ports(n: int) -> list[int]:
    """`n` different loopback ports that were free a moment ago (all bound at once, so none twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Answer:
    status: int
    body: str


def http_get(url: str, timeout: float = 5.0, accept: str | None = None) -> Answer:
    """GET url: its status and body, also for 4xx and 5xx. A transport error (refused, timed
    out) raises OSError."""
    req = urllib.request.Request(url)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Answer(r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        return Answer(e.code, e.read().decode())


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of GET url, or None when nothing answers."""
    try:
        return http_get(url, timeout).status
    except OSError:
        return None


def stop_process(process: subprocess.Popen | None, timeout: float = 15) -> int | None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds. Returns the exit code
    of a process that exited by itself or on SIGTERM; None when it had to be killed."""
    if process is None:
        return None
    if process.poll() is not None:
        return process.returncode
    process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def log_contains(path, text: str) -> bool:
    """Whether the log file at `path` has `text` in it yet (False while it does not exist)."""
    try:
        return text in path.read_text(errors="replace")
    except FileNotFoundError:
        return False
