"""The few raw HTTP helpers the suite needs on 127.0.0.1 (never any other address)."""

from __future__ import annotations

import socket
import time
from typing import Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """One raw HTTP/1.1 GET on loopback; the status code, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(256)
                if not chunk:
                    break
                buf += chunk
        return int(buf.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return None


def wait_ready(port: int, path: str, proc_alive: Callable[[], bool], timeout: float = 30.0) -> float:
    """Polls `path` every 5 ms until it answers 200; the seconds that took."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if not proc_alive():
            raise RuntimeError("server exited during startup")
        if http_status(port, path) == 200:
            return time.perf_counter() - t0
        time.sleep(0.005)
    raise RuntimeError(f"no 200 from {path} on port {port} within {timeout}s")
