"""The parts of a rollout rehearsal: real instances, HAProxy in front, wrk as the load.

No Kubernetes API server runs here, so the rehearsal plays what the StatefulSet controller and
kube-proxy do with real programs on loopback:

- `Instance`: one moscow-time process with its own data folder and a fixed port (a pod with
  its volume; a restart reuses both).
- `Balancer`: HAProxy configured like kube-proxy: round robin, `retries 0` (a refused connection
  is the client's error), and a `GET /readyz` check every second with `fall 1 rise 1` (an
  endpoint leaves and joins as soon as readiness says so, but never sooner), each check with
  the chart's readiness probe timeout. In `tcp` mode it
  is kube-proxy itself (layer 4: a connection stays with the pod chosen when it opened); in
  `http` mode it is an ingress controller (layer 7: each request picks a pod, and idle
  keep-alive connections to the pods are reused).
- `Load`: wrk with keep-alive connections on `GET /`, recording every answer (record.lua).
- `Outcome`: what the load saw, checked against the `visits` files.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared helpers: tests/pyhelpers
from pyhelpers.live import free_port, http_status, wait_until  # noqa: E402

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "record.lua"
CHART_VALUES = HERE.parents[1] / "helm" / "moscow-time" / "values.yaml"
CONNECTIONS = 16


def chart_values() -> dict:
    """The chart's defaults: what a rehearsal plays is what the chart deploys."""
    return yaml.safe_load(CHART_VALUES.read_text())


class Instance:
    """One moscow-time process: a pod with its own volume, restartable on the same folder and port."""

    def __init__(self, binary: Path, name: str, workdir: Path, delay_secs: int):
        self.binary = binary
        self.name = name
        self.data_dir = workdir / name / "data"
        self.data_dir.mkdir(parents=True)
        self.log_path = workdir / name / "log"
        self.port = free_port()
        self.delay_secs = delay_secs
        self.peers: list[str] = []
        self.process: subprocess.Popen | None = None
        self.exit_codes: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "DATA_DIR": str(self.data_dir),
            "POD_NAME": self.name,
            "PEERS": ",".join(self.peers),
            "LOG_FORMAT": "json",
            "SHUTDOWN_DELAY_SECS": str(self.delay_secs),
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([str(self.binary)], env=env, stdout=log,
                                            stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 20) -> None:
        """What the kubelet's readiness probe waits for: GET /readyz answers 200."""
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.process.returncode}: {self.log_tail()}")
            return http_status(f"{self.url}/readyz") == 200
        wait_until(ready, timeout, f"{self.name} to be ready")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.name} did not exit within {timeout} s of SIGTERM: {self.log_tail()}")
        self.exit_codes.append(code)
        return code

    def visits_on_disk(self) -> int:
        path = self.data_dir / "visits"
        return int(path.read_text()) if path.exists() else 0

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def make_cluster(binary: Path, workdir: Path, names: list[str], delay_secs: int) -> list[Instance]:
    """Instances (not started yet) that all list each other, themselves included, in PEERS."""
    instances = [Instance(binary, name, workdir, delay_secs) for name in names]
    for instance in instances:
        instance.peers = [other.url for other in instances]
    return instances


def start_all(instances: list[Instance]) -> None:
    for instance in instances:
        instance.start()
    for instance in instances:
        instance.wait_ready()


def haproxy_config(mode: str, port: int, stats_socket: Path, servers: list[Instance],
                   check_timeout_secs: float) -> str:
    """HAProxy like kube-proxy (`tcp`) or like an ingress controller (`http`).

    A check gives /readyz as long to answer as the chart's readiness probe does: a pod that is
    slow to answer on a busy machine is still ready to the kubelet, and must not leave the
    balancer (with nowhere else to go, every new connection would fail)."""
    assert mode in ("tcp", "http")
    keep_alive = """
    option http-keep-alive
    timeout http-keep-alive 10s
    timeout http-request 10s""" if mode == "http" else ""
    backends = "".join(f"\n    server {s.name} 127.0.0.1:{s.port} check" for s in servers)
    return f"""global
    maxconn 4096
    stats socket {stats_socket} mode 600 level admin
defaults
    mode {mode}
    retries 0
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check {round(check_timeout_secs * 1000)}ms{keep_alive}
frontend service
    bind 127.0.0.1:{port}
    default_backend pods
backend pods
    balance roundrobin
    option httpchk GET /readyz
    default-server inter 1s fall 1 rise 1{backends}
"""


class Balancer:
    """HAProxy in front of the instances (see the module doc and haproxy_config)."""

    def __init__(self, workdir: Path, servers: list[Instance], mode: str,
                 check_timeout_secs: float | None = None):
        if check_timeout_secs is None:
            check_timeout_secs = chart_values()["readinessProbe"]["timeoutSeconds"]
        self.port = free_port()
        self.socket_path = workdir / "haproxy.sock"
        self.config_path = workdir / "haproxy.cfg"
        self.log_path = workdir / "haproxy.log"
        self.config_path.write_text(haproxy_config(mode, self.port, self.socket_path, servers,
                                                    check_timeout_secs))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(["haproxy", "-db", "-f", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT)
        def listening() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"HAProxy exited {self.process.returncode}: "
                                     f"{self.log_path.read_text(errors='replace')}")
            return self.socket_path.exists()
        wait_until(listening, 10, "the HAProxy stats socket")

    def server_states(self) -> dict[str, str]:
        """{server name: "UP" | "DOWN" | ...} from HAProxy's stats socket."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket_path))
            s.sendall(b"show stat\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        rows = b"".join(chunks).decode().splitlines()
        header = rows[0].lstrip("# ").split(",")
        states = {}
        for row in rows[1:]:
            cells = dict(zip(header, row.split(",")))
            if cells.get("pxname") == "pods" and cells.get("svname") not in ("BACKEND", None):
                states[cells["svname"]] = cells["status"]
        return states

    def wait_states(self, wanted: dict[str, str], timeout: float = 10) -> None:
        def reached() -> bool:
            states = self.server_states()
            return all(states.get(name, "").startswith(state) for name, state in wanted.items())
        wait_until(reached, timeout, f"HAProxy to list {wanted}", interval=0.1)

    def state_changes(self) -> list[str]:
        """HAProxy's own account of its servers going UP and DOWN, and why (its log)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if " is UP" in line or " is DOWN" in line
                or "no server available" in line]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@dataclass
class Outcome:
    """What the load generator saw over one rehearsal."""

    statuses: Counter = field(default_factory=Counter)
    socket_errors: dict[str, int] = field(default_factory=dict)
    visit_numbers: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    @property
    def answers(self) -> int:
        return sum(self.statuses.values())

    @property
    def connection_errors(self) -> int:
        return sum(self.socket_errors.values())

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def requests(self) -> int:
        """Every request that got an answer or failed on its connection."""
        return self.answers + self.connection_errors

    @property
    def failures(self) -> int:
        return self.non_2xx + self.connection_errors

    @property
    def page_views(self) -> int:
        """200 answers to GET / (each carries its visit number)."""
        return sum(len(numbers) for numbers in self.visit_numbers.values())

    @classmethod
    def parse(cls, text: str) -> Outcome:
        outcome = cls()
        first, *answers = text.splitlines()
        assert first.startswith("errors "), f"unexpected wrk record: {first!r}"
        outcome.socket_errors = {k: int(v) for k, v in (kv.split("=") for kv in first.split()[1:])}
        for line in answers:
            status, instance, visit = line.split(" ")
            outcome.statuses[int(status)] += 1
            if status == "200" and visit != "-":
                outcome.visit_numbers[instance].append(int(visit))
        return outcome

    def repeated_numbers(self) -> dict[str, int]:
        """{instance: how many of its visit numbers it handed out more than once}, if any."""
        return {name: len(numbers) - len(set(numbers))
                for name, numbers in self.visit_numbers.items() if len(numbers) != len(set(numbers))}

    def disagreements(self, on_disk: dict[str, int]) -> list[str]:
        """How the answers disagree with the `visits` files: their sum must be the 200 answers to
        GET /, and each instance's numbers exactly 1..its count (distinct, none missing)."""
        problems = []
        if sum(on_disk.values()) != self.page_views:
            problems.append(f"visits files {on_disk} (sum {sum(on_disk.values())}) != "
                            f"{self.page_views} page views answered 200")
        problems += [f"{name} handed out {n} visit numbers twice" for name, n in self.repeated_numbers().items()]
        for name, count in on_disk.items():
            numbers = sorted(self.visit_numbers.get(name, []))
            if numbers != list(range(1, count + 1)):
                problems.append(f"{name}: visits file {count}, but the answers carried {len(numbers)} "
                                f"numbers from {numbers[:1]} to {numbers[-1:]}")
        if unknown := set(self.visit_numbers) - set(on_disk):
            problems.append(f"answers from unknown instances: {sorted(unknown)}")
        return problems

    def summary(self) -> str:
        errors = ", ".join(f"{k} {v}" for k, v in self.socket_errors.items() if v) or "none"
        return (f"{self.requests} requests, {self.failures} failed "
                f"({100 * self.failures / max(self.requests, 1):.2f} %): "
                f"non-2xx {self.non_2xx}, connection errors {self.connection_errors} ({errors}); "
                f"{self.page_views} page views answered 200")


def _stands_still(value: Callable[[], int], seconds: float) -> Callable[[], bool]:
    """A condition that holds once value() has not changed for `seconds`."""
    last = {"value": None, "since": time.monotonic()}

    def check() -> bool:
        now, current = time.monotonic(), value()
        if current != last["value"]:
            last.update(value=current, since=now)
        return now - last["since"] >= seconds
    return check


class Load:
    """wrk on GET / through the balancer: keep-alive connections, every answer recorded."""

    def __init__(self, workdir: Path, url: str, connections: int = CONNECTIONS):
        self.record_path = workdir / "wrk-record.txt"
        self.stop_file = workdir / "wrk-stop"
        self.log_path = workdir / "wrk.log"
        self.url = url
        self.connections = connections
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self.seconds = 0.0

    def start(self, max_seconds: int = 120) -> None:
        for stale in [self.stop_file, *self.record_path.parent.glob(self.record_path.name + ".live.*")]:
            stale.unlink(missing_ok=True)
        env = dict(os.environ, WRK_RECORD=str(self.record_path), WRK_STOP_FILE=str(self.stop_file))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["wrk", "-t2", f"-c{self.connections}", f"-d{max_seconds}s", "--timeout", "10s",
                 "-s", str(WRK_SCRIPT), f"{self.url}/"],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def stop(self, visits_counted: Callable[[], int]) -> Outcome:
        """Winds down to GET /healthz, stops wrk once no visit is in flight, returns what it saw.

        No GET / starts after the wind-down; one still in flight (a slow fsync on a busy disk)
        moves the count when it completes. So wrk is stopped once `visits_counted()` (the sum of
        the `visits` files) has stood still for a while, and only then."""
        self.stop_file.touch()
        wait_until(_stands_still(visits_counted, seconds=1.5), 30, "the visits files to stand still",
                   interval=0.25)
        # The answer of the last counted visit may still be on its way: wait until wrk's live
        # record holds as many page views as the files count. One that never arrives (a broken
        # connection) is no reason to hang: it shows as a disagreement in the outcome.
        counted = visits_counted()
        with contextlib.suppress(AssertionError):
            wait_until(lambda: self.live_page_views() >= counted, 10, "the last answers to reach wrk")
        self.seconds = time.monotonic() - self.started
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("wrk did not stop on SIGINT")
        assert self.record_path.exists(), f"wrk wrote no record: {self.log_path.read_text()}"
        return Outcome.parse(self.record_path.read_text())

    def live_page_views(self) -> int:
        """The page views in the records the wrk threads append to from the wind-down on."""
        text = "".join(p.read_text() for p in self.record_path.parent.glob(self.record_path.name + ".live.*"))
        return Outcome.parse("errors\n" + text).page_views

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def stop_all(instances: list[Instance], timeout: float) -> None:
    """SIGTERM every instance still running and wait for each to exit."""
    running = [i for i in instances if i.process and i.process.poll() is None]
    for instance in running:
        instance.terminate()
    for instance in running:
        instance.wait_exit(timeout)
