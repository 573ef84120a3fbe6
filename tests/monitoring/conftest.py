"""The live monitoring stack, started once for the session: the chart rendered with the test's
values, three moscow-time processes as its pods, and a Prometheus server scraping them with the
ServiceMonitor's settings and the PrometheusRule's groups as its rule file.

MOSCOW_TIME_BIN names the binary (default target/debug/moscow-time); PROMETHEUS the server
(default `prometheus` on PATH, Debian's package).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared helpers: tests/pyhelpers

import chart  # noqa: E402
from live import POD_ADDRESSES, Instance, Prometheus, Traffic  # noqa: E402
from pyhelpers.live import free_port, wait_until  # noqa: E402

REPORT: list[str] = []


@dataclass
class Stack:
    docs: list[dict]
    scrape: chart.Scrape
    pods: list[Instance]
    prom: Prometheus
    fault_injection: bool
    # every page view any traffic made: (pod, status, visit number)
    answers: list = field(default_factory=list)

    def pod(self, index: int) -> Instance:
        return self.pods[index]


def pinned_binary(folder: Path) -> Path:
    """A copy of $MOSCOW_TIME_BIN (default target/debug/moscow-time): a rebuild in the shared
    working tree meanwhile changes nothing under test."""
    source = Path(os.environ.get("MOSCOW_TIME_BIN", chart.ROOT / "target" / "debug" / "moscow-time"))
    if not source.exists():
        pytest.fail(f"{source} is missing: run cargo build or set MOSCOW_TIME_BIN")
    return Path(shutil.copy2(source, folder / "moscow-time"))


def pod_env(docs: list[dict], workdir: Path, pods: list[Instance]) -> dict[str, str]:
    """The rendered pod environment, with the config file written out and PEERS standing in for
    PEERS_DNS (no DNS server on loopback: the list names the same three pods)."""
    env = chart.pod_environment(docs)
    name, text = chart.config_file(docs)
    (workdir / name).write_text(text)
    env["CONFIG_FILE"] = str(workdir / name)
    if env.pop("PEERS_DNS", None):
        env["PEERS"] = ",".join(p.url for p in pods)
    return env


def warm_up(s: Stack) -> None:
    """Traffic on every pod (page views and cluster totals) until Prometheus has scraped each pod
    at least twice since, so that every rate and histogram has data."""
    with Traffic(s.pods, s.answers, extra_paths=["/visits/cluster", "/api/time"]):
        wait_until(lambda: len(s.prom.query("count_over_time(moscow_time_visits_total[1m]) >= 2")) == len(s.pods),
                   30, "two scrapes of every pod")
        # The traffic shows between two scrapes: every pod's request rate and latency histogram moves.
        wait_until(lambda: len(s.prom.query(
            "sum by (pod) (rate(moscow_time_http_request_duration_seconds_count[1m])) > 0")) == len(s.pods),
                   30, "a request rate on every pod")


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    prometheus = os.environ.get("PROMETHEUS") or shutil.which("prometheus")
    if not prometheus:
        pytest.fail("no prometheus server: apt-get install prometheus (scripts/test does)")
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("monitoring")
    binary = pinned_binary(workdir)
    docs = chart.render(free_port(POD_ADDRESSES))
    scrape = chart.scrape_from_service_monitor(docs)
    fullname = chart.one(docs, "StatefulSet")["metadata"]["name"]
    pods = [Instance(binary, f"{fullname}-{i}", a, scrape.port, workdir) for i, a in enumerate(POD_ADDRESSES)]
    prom = Prometheus(prometheus, workdir)
    help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True).stdout
    s = Stack(docs, scrape, pods, prom, "--fault-injection" in help_text)
    try:
        env = pod_env(docs, workdir, pods)
        for p in pods:
            p.start(env)
        prom.start(scrape, pods, chart.rule_groups(docs))
        warm_up(s)
        REPORT.append(f"stack up in {time.monotonic() - started:.1f} s (3 pods, Prometheus on :{prom.port}, "
                      f"scrape {scrape.path} on port {scrape.port_name}={scrape.port} every {scrape.interval})")
        yield s
    finally:
        prom.stop()
        for p in pods:
            p.stop()


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("live monitoring")
        for line in REPORT:
            terminalreporter.write_line(line)
