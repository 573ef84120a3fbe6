"""The live parts of the monitoring test: three moscow-time processes standing in for the pods, a
real Prometheus server scraping them, traffic, and a second process holding a pod's file lock.

No Kubernetes runs here, so the harness plays the part of prometheus-operator: each pod is a
process on its own loopback address (127.77.0.N) listening on the chart's container port, and the
scrape job carries the labels the operator gives a ServiceMonitor target (namespace, pod, service,
endpoint, container, job).
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from chart import NAMESPACE, Scrape
from pyhelpers.live import free_port, stop_process, wait_until

POD_ADDRESSES = ["127.77.0.1", "127.77.0.2", "127.77.0.3"]


@dataclass
class Answer:
    status: int | None  # None: no answer (timeout, refused)
    body: str
    headers: dict


def request(url: str, method: str = "GET", timeout: float = 5.0) -> Answer:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Answer(r.status, r.read().decode(), {k.lower(): v for k, v in r.headers.items()})
    except urllib.error.HTTPError as e:
        return Answer(e.code, e.read().decode(errors="replace"), {k.lower(): v for k, v in e.headers.items()})
    except OSError as e:
        return Answer(None, str(e), {})


class Instance:
    """One moscow-time process standing in for pod `name`, with its own data folder."""

    def __init__(self, binary: Path, name: str, address: str, port: int, workdir: Path):
        self.binary, self.name, self.address, self.port = binary, name, address, port
        self.data_dir = workdir / name / "data"
        self.data_dir.mkdir(parents=True)
        self.log_path = workdir / name / "log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def target(self) -> str:
        return f"{self.address}:{self.port}"

    def start(self, env: dict[str, str]) -> None:
        """Start with the pod's environment (`env`), plus what a pod gets from Kubernetes."""
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env,
                "HOST": self.address, "DATA_DIR": str(self.data_dir), "POD_NAME": self.name}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([str(self.binary)], env=full, stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL)
        log.close()
        wait_until(lambda: self.get("/healthz", timeout=0.5).status == 200, 60, f"{self.name} to start")

    def get(self, path: str, timeout: float = 5.0) -> Answer:
        return request(self.url + path, timeout=timeout)

    def put(self, path: str) -> Answer:
        return request(self.url + path, "PUT")

    def delete(self, path: str) -> Answer:
        return request(self.url + path, "DELETE")

    def visit(self, timeout: float = 5.0) -> tuple[int | None, int | None]:
        """GET / once: (status, visit number or None)."""
        a = self.get("/", timeout=timeout)
        number = a.headers.get("x-visit-number")
        return a.status, int(number) if number else None

    def file_count(self) -> int:
        """The count in the `visits` file, read as an operator would with `cat`."""
        path = self.data_dir / "visits"
        return int(path.read_text()) if path.exists() else 0

    def pause(self) -> None:
        """SIGSTOP: the process still holds its port but answers nothing (a hung pod)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
        stop_process(self.process)


class QueryError(Exception):
    """Prometheus refused a query (it does not parse, or cannot be evaluated)."""


class Prometheus:
    """A real Prometheus server on loopback with temporary storage."""

    def __init__(self, binary: str, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "prometheus.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, scrape: Scrape, pods: list[Instance], rule_groups: list[dict]) -> None:
        rules = self.workdir / "rules.yaml"
        rules.write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
        config = self.workdir / "prometheus.yaml"
        config.write_text(yaml.safe_dump(scrape_config(scrape, pods, rules), sort_keys=False))
        check = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, f"promtool rejects the generated config:\n{check.stdout}{check.stderr}"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        wait_until(lambda: request(self.url + "/-/ready", timeout=0.5).status == 200, 30,
                   lambda: f"Prometheus to be ready; its log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        a = request(url, timeout=10)
        try:
            body = json.loads(a.body)
        except ValueError:
            raise QueryError(f"{path}: HTTP {a.status}: {a.body[:300]}") from None
        if body.get("status") != "success":
            raise QueryError(f"{params.get('query', path)}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector (or a scalar as a one-element list)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, expr: str) -> float | None:
        """The single value of a query that returns at most one sample (None: no sample)."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} returned {len(result)} series, want one"
        return float(result[0]["value"][1]) if result else None

    def targets_up(self) -> dict[str, str]:
        """pod -> health of its scrape target ("up", "down", "unknown")."""
        active = self.api("targets", state="active")["activeTargets"]
        return {t["labels"].get("pod", t["scrapeUrl"]): t["health"] for t in active}

    def alerts(self, name: str, state: str = "firing") -> set[str]:
        """The pods (or other instances) for which alert `name` is in `state` now."""
        return {a["labels"].get("pod", "") for a in self.api("alerts")["alerts"]
                if a["labels"].get("alertname") == name and a["state"] == state}

    def stop(self) -> None:
        stop_process(self.process)


def scrape_config(scrape: Scrape, pods: list[Instance], rules: Path) -> dict:
    """The Prometheus configuration prometheus-operator would generate for the ServiceMonitor,
    with the pods as static targets carrying the labels the operator sets. The rule evaluation
    interval belongs to the Prometheus server, not the chart: here it is the scrape interval."""
    return {
        "global": {"scrape_interval": scrape.interval, "scrape_timeout": scrape.timeout,
                   "evaluation_interval": scrape.interval},
        "rule_files": [str(rules)],
        "scrape_configs": [{
            "job_name": f"serviceMonitor/{NAMESPACE}/{scrape.service}/0",
            "metrics_path": scrape.path,
            "scrape_interval": scrape.interval,
            "scrape_timeout": scrape.timeout,
            "honor_labels": scrape.honor_labels,
            "static_configs": [{
                "targets": [p.target],
                "labels": {"namespace": NAMESPACE, "pod": p.name, "service": scrape.service,
                           "endpoint": scrape.port_name, "container": "moscow-time", "job": scrape.service},
            } for p in pods],
        }],
    }


class Traffic:
    """Page views on some pods, one sequential client per pod, until stopped. Every answer is
    appended to `log` as (pod, status, visit number), so a test can check the numbers."""

    def __init__(self, pods: list[Instance], log: list, pause: float = 0.02, extra_paths=()):
        self.pods, self.log, self.pause, self.extra_paths = pods, log, pause, extra_paths
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(p,), daemon=True) for p in pods]

    def _run(self, pod: Instance) -> None:
        while not self.stopping.is_set():
            # A generous timeout: an answer given up on would read as a gap in the numbers.
            status, number = pod.visit(timeout=30)
            self.log.append((pod.name, status, number))
            for path in self.extra_paths:
                pod.get(path)
            self.stopping.wait(self.pause)

    def __enter__(self) -> "Traffic":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=45)  # beyond a visit's own timeout


class LockHolder:
    """Another process's writer on the same volume: holds `visits.lock` (flock, as the store
    takes it) for `hold` seconds at a time, so the pod's durable writes wait that long."""

    def __init__(self, pod: Instance, hold: float, gap: float = 0.05):
        self.path, self.hold, self.gap = pod.data_dir / "visits.lock", hold, gap
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with open(self.path, "a") as f:
            while not self.stopping.is_set():
                fcntl.flock(f, fcntl.LOCK_EX)
                self.stopping.wait(self.hold)
                fcntl.flock(f, fcntl.LOCK_UN)
                time.sleep(self.gap)  # part of the fault: writes get through between holds

    def __enter__(self) -> "LockHolder":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


def is_finite(sample_value: str) -> bool:
    return math.isfinite(float(sample_value))
