"""Rollouts and node drains under load, with the real binary behind HAProxy (see rehearsal.py).

- A rolling restart (highest ordinal first: SIGTERM, wait for the exit, a 2 s gap, start again on
  the same folder, wait for ready, next) with the chart's shutdown delay: no request fails, and
  the `visits` files agree with the answers.
- A node drain: a fresh instance joins, then all three get SIGTERM at once: no request fails.
- The must-fail check: the same rolling restart without the delay does fail requests, so the
  rehearsal can tell the difference.
"""
from __future__ import annotations

import time

import pytest

from conftest import FIGURES
from pyhelpers.rollout import roll
from rehearsal import Balancer, Instance, Load, Outcome, chart_values, make_cluster, start_all, stop_all

CHART_DELAY_SECS = chart_values()["config"]["shutdown_delay_secs"]
SHUTDOWN_TIMEOUT_SECS = 20    # the binary's default
NAMES = ["moscow-time-0", "moscow-time-1", "moscow-time-2"]
# tcp: kube-proxy (a connection stays with its pod); http: an ingress controller (per request).
MODES = ["tcp", "http"]


class Rehearsal:
    """Three instances (and maybe a spare), the balancer and the load; close() stops them all."""

    def __init__(self, binary, workdir, mode: str, delay_secs: int, spare: str | None = None):
        self.mode = mode
        self.delay_secs = delay_secs
        self.instances = make_cluster(binary, workdir, NAMES, delay_secs)
        self.spare = Instance(binary, spare, workdir, delay_secs) if spare else None
        if self.spare:
            self.spare.peers = [i.url for i in self.everyone]
        self.balancer = Balancer(workdir, self.everyone, mode)
        self.load = Load(workdir, self.balancer.url)
        self.exit_seconds: list[float] = []

    def start(self) -> None:
        start_all(self.instances)
        self.balancer.start()
        # A spare is listed but not running yet: the balancer must have found it down.
        self.balancer.wait_states({i.name: "UP" for i in self.instances}
                                  | ({self.spare.name: "DOWN"} if self.spare else {}))

    @property
    def everyone(self) -> list[Instance]:
        return self.instances + ([self.spare] if self.spare else [])

    def exit_timeout(self) -> float:
        return self.delay_secs + SHUTDOWN_TIMEOUT_SECS + 5

    def stop_one(self, instance: Instance) -> None:
        started = time.monotonic()
        instance.terminate()
        code = instance.wait_exit(self.exit_timeout())
        self.exit_seconds.append(time.monotonic() - started)
        assert code == 0, f"{instance.name} exited {code} on SIGTERM: {instance.log_tail()}"

    def roll(self) -> None:
        """What the StatefulSet controller does on an update, highest ordinal first."""
        def start(instance: Instance) -> None:
            instance.start()
            instance.wait_ready()
        roll(self.instances, self.stop_one, start)

    def drain_node(self) -> None:
        """A fresh instance takes over, then all three get SIGTERM at the same moment."""
        self.spare.start()
        self.spare.wait_ready()
        self.balancer.wait_states({self.spare.name: "UP"})
        started = time.monotonic()
        for instance in self.instances:
            instance.terminate()
        for instance in self.instances:
            code = instance.wait_exit(self.exit_timeout())
            assert code == 0, f"{instance.name} exited {code} on SIGTERM: {instance.log_tail()}"
        self.exit_seconds.append(time.monotonic() - started)

    def under_load(self, action) -> Outcome:
        self.load.start()
        time.sleep(2)                 # load pacing: steady state first
        action()
        time.sleep(2)                 # and again after
        outcome = self.load.stop(lambda: sum(self.visits_on_disk().values()))
        stop_all(self.everyone, self.exit_timeout())
        return outcome

    def visits_on_disk(self) -> dict[str, int]:
        return {i.name: i.visits_on_disk() for i in self.everyone}

    def close(self) -> None:
        self.load.kill()
        for instance in self.everyone:
            instance.kill()
        self.balancer.stop()


@pytest.fixture
def rehearsals(tmp_path):
    opened: list[Rehearsal] = []

    def open_rehearsal(binary, mode: str, delay_secs: int, spare: str | None = None) -> Rehearsal:
        r = Rehearsal(binary, tmp_path, mode, delay_secs, spare)
        opened.append(r)
        r.start()
        return r

    yield open_rehearsal
    for r in opened:
        r.close()


def report(name: str, rehearsal: Rehearsal, outcome: Outcome) -> None:
    exits = ", ".join(f"{s:.1f}" for s in rehearsal.exit_seconds)
    line = (f"{name} ({rehearsal.mode} mode), delay {rehearsal.delay_secs} s: {outcome.summary()} over "
            f"{rehearsal.load.seconds:.0f} s; SIGTERM-to-exit {exits} s; visits files "
            f"{rehearsal.visits_on_disk()}")
    FIGURES.append(line)
    print(line)


def failure_report(rehearsal: Rehearsal, outcome: Outcome) -> str:
    """The outcome and what the balancer saw of the instances, to tell why a request failed."""
    return "\n".join([outcome.summary(), "HAProxy:", *rehearsal.balancer.state_changes()])


def require_delay(delay_supported: bool) -> None:
    if not delay_supported:
        pytest.fail("the binary has no --shutdown-delay-secs / SHUTDOWN_DELAY_SECS yet")


@pytest.mark.parametrize("mode", MODES)
def test_a_rolling_restart_with_the_shutdown_delay_fails_no_request(binary, delay_supported, rehearsals, mode):
    require_delay(delay_supported)
    rehearsal = rehearsals(binary, mode, CHART_DELAY_SECS)
    outcome = rehearsal.under_load(rehearsal.roll)
    report("rolling restart", rehearsal, outcome)
    assert outcome.page_views > 1000, "too little load to prove anything"
    assert outcome.failures == 0, failure_report(rehearsal, outcome)
    assert all(s >= CHART_DELAY_SECS for s in rehearsal.exit_seconds), (
        f"an instance exited before its delay was over: {rehearsal.exit_seconds}")
    problems = outcome.disagreements(rehearsal.visits_on_disk())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("mode", MODES)
def test_a_node_drain_with_the_shutdown_delay_fails_no_request(binary, delay_supported, rehearsals, mode):
    require_delay(delay_supported)
    rehearsal = rehearsals(binary, mode, CHART_DELAY_SECS, spare="moscow-time-3")
    outcome = rehearsal.under_load(rehearsal.drain_node)
    report("node drain", rehearsal, outcome)
    assert outcome.page_views > 1000, "too little load to prove anything"
    assert outcome.failures == 0, failure_report(rehearsal, outcome)
    problems = outcome.disagreements(rehearsal.visits_on_disk())
    assert not problems, "\n".join(problems)
    assert len(outcome.visit_numbers.get("moscow-time-3", [])) > 0, "the fresh instance served nothing"


@pytest.mark.parametrize("mode", MODES)
def test_the_same_rolling_restart_without_the_delay_fails_requests(binary, rehearsals, mode):
    rehearsal = rehearsals(binary, mode, 0)
    outcome = rehearsal.under_load(rehearsal.roll)
    report("rolling restart", rehearsal, outcome)
    assert outcome.page_views > 1000, "too little load to prove anything"
    assert outcome.failures > 0, (
        "no request failed without the delay: the rehearsal cannot tell a drain from none")
    # Failed requests, but still no acknowledged visit lost and no number handed out twice.
    assert sum(rehearsal.visits_on_disk().values()) >= outcome.page_views
    assert not outcome.repeated_numbers(), f"visit numbers handed out twice: {outcome.repeated_numbers()}"
