"""The systems under test: how each one starts, answers "how many visits are durable?", and stops.

- ``MoscowTime``: the service (``target/release/moscow-time`` by default), with its defaults or
  with ``--max-batch N``.
- ``FlaskFile`` and ``FlaskRedis``: the two peers in ``bench/peers/``, under gunicorn from the
  benchmark venv.

Every system is started on 127.0.0.1 on a free port, with a fresh folder under
``bench/results/tmp/<system>-<tag>``, each process leading its own process group.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from moscow_bench.loopback import free_port, wait_ready
from moscow_bench.workspace import PEERS, TMP, VENV, fresh_dir, log

SYSTEM_NAMES = ("moscow-time", "moscow-time-batch1", "flask-file", "flask-redis")


def terminate(procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    """SIGTERM our own children (each leads its own process group), then SIGKILL."""
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"pid {p.pid} ignored SIGTERM; killing its group")
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)


class Running:
    """One started system: its processes, port, data folder and log files."""

    def __init__(self, system: "System", procs: list[subprocess.Popen], port: int, data: Path,
                 logs: list[IO], redis_port: int | None = None):
        self.system, self.procs, self.port, self.data, self.logs = system, procs, port, data, logs
        self.redis_port = redis_port

    @property
    def roots(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def count(self) -> int:
        return self.system.read_count(self)

    def stop(self) -> None:
        terminate(list(reversed(self.procs)))
        for f in self.logs:
            f.close()


class System:
    """What every system under test has; subclasses say how to start one and read its count."""

    name = ""
    label = ""
    ready_path = "/healthz"
    number_re: re.Pattern | None = None  # where a peer prints the visit number
    env: dict[str, str] = {}

    def describe(self) -> dict:
        return {"label": self.label, "description": self.__doc__.strip()}

    def spawn(self, cmd: list[str], env: dict[str, str], logf: IO, cwd: Path | None = None) -> subprocess.Popen:
        """Starts one process in its own session, output to `logf`, with `env` over ours."""
        return subprocess.Popen(
            cmd, env={**os.environ, **env}, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def start(self, tag: str) -> Running:
        raise NotImplementedError

    def read_count(self, r: Running) -> int:
        raise NotImplementedError

    def persist_stats(self, r: Running) -> dict | None:
        """The service's own group-commit counters; only moscow-time has them."""
        return None

    def start_ready(self, tag: str) -> tuple[Running, float]:
        """Starts the system and waits for a 200 on its ready path; the seconds that took."""
        r = self.start(tag)
        try:
            t = wait_ready(r.port, self.ready_path, r.alive)
        except Exception:
            r.stop()
            for f in r.logs:
                try:
                    sys.stderr.write(Path(f.name).read_text()[-3000:])
                except OSError:
                    pass
            raise
        return r, t

    def discard(self, tag: str, r: Running) -> None:
        """Removes a finished run's scratch folder and logs (kept only when a run fails)."""
        shutil.rmtree(TMP / f"{self.name}-{tag}", ignore_errors=True)
        for f in r.logs:
            Path(f.name).unlink(missing_ok=True)

    def _log_file(self, data: Path, tag: str, suffix: str = "log") -> IO:
        return open(data.parent / f"{self.name}-{tag}.{suffix}", "w")

    @staticmethod
    def read_file_count(path: Path) -> int:
        try:
            txt = path.read_text().strip()
            return int(txt) if txt else 0
        except FileNotFoundError:
            return 0


class MoscowTime(System):
    """The service under test (target/release/moscow-time), default settings: group commit on."""

    ready_path = "/readyz"
    PERSIST = ("moscow_time_persist_duration_seconds_sum", "moscow_time_persist_duration_seconds_count",
               "moscow_time_persist_batch_size_sum", "moscow_time_persist_batch_size_count")

    def __init__(self, binary: Path, max_batch: int | None = None, rust_log: str | None = None):
        self.binary, self.max_batch = binary, max_batch
        self.env = {"RUST_LOG": rust_log} if rust_log else {}
        if max_batch is None:
            self.name, self.label = "moscow-time", "moscow-time"
        else:
            self.name = f"moscow-time-batch{max_batch}"
            self.label = f"moscow-time --max-batch {max_batch}"
            self.__doc__ = (f"The same binary with --max-batch {max_batch}: group commit switched off, "
                            "one durable write (temp + fsync + rename + fsync dir) per visit.")

    def describe(self) -> dict:
        return {**super().describe(), "binary": str(self.binary),
                "command": self.command(0, Path("$DATA_DIR"))}

    def command(self, port: int, data: Path) -> list[str]:
        cmd = [str(self.binary), "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(data), "--log-format", "json", "--instance", "bench"]
        if self.max_batch is not None:
            cmd += ["--max-batch", str(self.max_batch)]
        return cmd

    def start(self, tag: str) -> Running:
        port, data = free_port(), fresh_dir(f"{self.name}-{tag}")
        logf = self._log_file(data, tag)
        p = self.spawn(self.command(port, data / "data"), self.env, logf)
        return Running(self, [p], port, data / "data", [logf])

    def read_count(self, r: Running) -> int:
        return self.read_file_count(r.data / "visits")

    def persist_stats(self, r: Running) -> dict | None:
        """The service's own group-commit counters from /metrics (read once before and after a run)."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
        except (OSError, http.client.HTTPException):
            return None
        out = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in self.PERSIST:
                out[parts[0]] = float(parts[1])
        return out if len(out) == len(self.PERSIST) else None


class GunicornPeer(System):
    """A peer app from ``bench/peers/<folder>`` served by gunicorn (sync workers) from the venv."""

    label_format = ""  # the label, with {workers} filled in

    def __init__(self, workers: int):
        self.workers = workers
        self.label = self.label_format.format(workers=workers)

    def describe(self) -> dict:
        return {**super().describe(), "workers": self.workers}

    def gunicorn(self, port: int) -> list[str]:
        return [str(VENV / "bin" / "gunicorn"), "-w", str(self.workers), "-b", f"127.0.0.1:{port}", "app:app"]


class FlaskFile(GunicornPeer):
    """Peer 1, the typical course app: Flask under gunicorn (sync workers); every page view
    reads `visits`, adds one and writes it back in place (no lock, no rename, no fsync)."""

    name = "flask-file"
    label_format = "Flask+gunicorn ({workers} workers) file counter"
    number_re = re.compile(rb"Visits: (\d+)")

    def start(self, tag: str) -> Running:
        port, data = free_port(), fresh_dir(f"{self.name}-{tag}")
        logf = self._log_file(data, tag)
        p = self.spawn(self.gunicorn(port), {"DATA_DIR": str(data / "data")}, logf,
                       cwd=PEERS / "flask_file")
        return Running(self, [p], port, data / "data", [logf])

    def read_count(self, r: Running) -> int:
        return self.read_file_count(r.data / "visits")


class FlaskRedis(GunicornPeer):
    """Peer 2, the Docker Compose quick-start counter: Flask under gunicorn (sync workers),
    redis-py `INCR hits` against a local redis-server with appendonly yes + appendfsync always."""

    name = "flask-redis"
    label_format = "Flask+gunicorn ({workers} workers) + Redis appendfsync always"
    number_re = re.compile(rb"seen (\d+) times")

    def start(self, tag: str) -> Running:
        port, rport = free_port(), free_port()
        data = fresh_dir(f"{self.name}-{tag}")
        (data / "redis").mkdir()
        conf = (PEERS / "flask_redis" / "redis.conf.in").read_text()
        conf = conf.replace("@PORT@", str(rport)).replace("@DIR@", str(data / "redis"))
        (data / "redis.conf").write_text(conf)
        rlog = self._log_file(data, tag, "redis.log")
        rp = self.spawn(["redis-server", str(data / "redis.conf")], {}, rlog)
        _wait_for_redis(rp, rport, rlog)
        glog = self._log_file(data, tag)
        gp = self.spawn(self.gunicorn(port), {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(rport)},
                        glog, cwd=PEERS / "flask_redis")
        return Running(self, [rp, gp], port, data, [rlog, glog], redis_port=rport)

    def read_count(self, r: Running) -> int:
        with socket.create_connection(("127.0.0.1", r.redis_port), timeout=5) as s:
            s.sendall(b"GET hits\r\n")
            buf = b""
            while not (buf.startswith(b"$-1\r\n") or buf.count(b"\r\n") >= 2):
                chunk = s.recv(64)
                if not chunk:
                    break
                buf += chunk
        if buf.startswith(b"$-1"):
            return 0
        return int(buf.split(b"\r\n")[1])


def _wait_for_redis(proc: subprocess.Popen, port: int, logf: IO, timeout: float = 10.0) -> None:
    """Until redis-server answers PING (bounded by `timeout`)."""
    t0 = time.monotonic()
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() - t0 > timeout:
            logf.close()
            raise RuntimeError("redis-server did not start: " + Path(logf.name).read_text()[-2000:])
        time.sleep(0.01)


def build_systems(names: list[str], binary: Path, rust_log: str | None, peer_workers: int) -> list[System]:
    """The systems named on the command line, in that order."""
    makers = {
        "moscow-time": lambda: MoscowTime(binary, rust_log=rust_log),
        "moscow-time-batch1": lambda: MoscowTime(binary, max_batch=1, rust_log=rust_log),
        "flask-file": lambda: FlaskFile(peer_workers),
        "flask-redis": lambda: FlaskRedis(peer_workers),
    }
    return [makers[n]() for n in names]
