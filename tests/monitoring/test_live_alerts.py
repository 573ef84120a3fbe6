"""The chart's alerts fire under real faults, for the broken pod only, and resolve once the fault
is cleared; the pods keep counting throughout.

Each alert that can be provoked without Kubernetes is provoked here. Alerts on kube-state-metrics
series (a pod's Ready condition) cannot be: no kubelet or kube-state-metrics runs on loopback.
"""
from __future__ import annotations

import re
import time

import pytest

import chart
from conftest import REPORT
from live import LockHolder, Traffic, request
from pyhelpers.live import wait_until

CANARY = "MonitoringTestNeverFires"  # tests/monitoring/values.yaml: the must-fail rule
# Every alert of the chart that a test below provokes for real.
PROVOKED = {"MoscowTimePersistErrors", "MoscowTimeTargetDown", "MoscowTimePeerFetchErrors",
            "MoscowTimePersistLatencyHigh", "MoscowTimePersistStalled"}
SLACK = 10  # seconds beyond a rule's own window and `for:` (scrapes, evaluations, polling)
PATIENCE = 30  # seconds for what happens within a few on an idle machine: a bound, not a speed claim


def seconds(duration: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|s|m|h)", duration):
        total += int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def timing(stack, alert: str) -> tuple[float, float]:
    """(longest wait to fire, longest wait to resolve) from the rendered rule's for: and window."""
    rule = chart.alert_rules(stack.docs)[alert]
    window = max((seconds(w) for w in re.findall(r"\[(\w+)\]", rule["expr"])), default=0)
    hold = seconds(rule.get("for", "0s"))
    return window + hold + SLACK, window + SLACK


def wait_firing(prom, alert: str, pods: set[str], timeout: float) -> None:
    """Wait until `alert` fires for `pods`, then require that it fires, or is pending, for no
    other pod."""
    wait_until(lambda: pods <= prom.alerts(alert), timeout,
               lambda: f"{alert} to fire for {sorted(pods)}; firing for {sorted(prom.alerts(alert))}")
    others = (prom.alerts(alert) | prom.alerts(alert, "pending")) - pods
    assert not others, f"{alert} also fires or is pending for {sorted(others)}"


def wait_resolved(prom, alert: str, timeout: float) -> None:
    wait_until(lambda: not (prom.alerts(alert) | prom.alerts(alert, "pending")), timeout,
               lambda: f"{alert} to resolve; still active for {sorted(prom.alerts(alert))}")


def counted(stack, pod, timeout: float = 30) -> None:
    """Wait until Prometheus has the pod's count as its visits file has it."""
    wait_until(lambda: stack.prom.value(f'moscow_time_visits_total{{pod="{pod.name}"}}') == pod.file_count(),
               timeout, f"Prometheus to have {pod.name}'s count")


def needs_fault_injection(stack) -> None:
    if not stack.fault_injection:
        pytest.fail("the binary has no --fault-injection: the /faults routes are missing")


def test_every_alert_is_provoked_here_or_needs_kube_state_metrics(stack):
    rules = {name: r for name, r in chart.alert_rules(stack.docs).items() if name != CANARY}
    needs_ksm = {name for name, r in rules.items() if "kube_" in r["expr"]}
    assert set(rules) == PROVOKED | needs_ksm, (
        f"not provoked by a live test: {sorted(set(rules) - PROVOKED - needs_ksm)}")
    for name in needs_ksm:
        assert stack.prom.query(re.search(r"kube_\w+", rules[name]["expr"]).group(0)) == []
    REPORT.append(f"alerts provoked live: {', '.join(sorted(PROVOKED))}")
    REPORT.append(f"alerts needing kube-state-metrics (not run here): {', '.join(sorted(needs_ksm))}")


def fault_fires_alert_for_that_pod_only(stack, fault: str, alert: str, faulty, while_firing,
                                        extra_wait: float = 0.0) -> float:
    """Injects `fault` into `faulty` under traffic on every pod: `alert` must fire for it alone
    (within its window and for:, plus `extra_wait`), `while_firing(faulty)` checks the pod
    meanwhile; the faulty pod refuses visits while the others answer every one; once cleared it
    is ready again, the alert resolves and the pod counts on with no reset. Returns the seconds."""
    needs_fault_injection(stack)
    prom = stack.prom
    others = [p for p in stack.pods if p is not faulty]
    fire, resolve = timing(stack, alert)
    started = time.monotonic()
    with Traffic(stack.pods, stack.answers):
        assert faulty.put(f"/faults/{fault}").status in (200, 204)
        during = len(stack.answers)
        try:
            wait_firing(prom, alert, {faulty.name}, fire + extra_wait)
            while_firing(faulty)
        finally:
            assert faulty.delete(f"/faults/{fault}").status in (200, 204)
        answers = stack.answers[during:]
        assert {s for n, s, _ in answers if n == faulty.name} >= {503}, "the faulty pod never refused a visit"
        for p in others:
            assert {s for n, s, _ in answers if n == p.name} == {200}, f"{p.name} failed visits meanwhile"
        wait_until(lambda: faulty.get("/readyz").status == 200, PATIENCE, "readiness to come back")
        wait_resolved(prom, alert, resolve)
        after_fault = faulty.file_count()
        wait_until(lambda: faulty.file_count() > after_fault + 5, PATIENCE, f"{faulty.name} to count on")
    counted(stack, faulty)
    assert prom.value(f'resets(moscow_time_visits_total{{pod="{faulty.name}"}}[10m])') == 0
    return time.monotonic() - started


def test_a_full_disk_fires_persist_errors_for_that_pod_only_and_counting_goes_on(stack):
    prom, faulty, others = stack.prom, stack.pod(1), [stack.pod(0), stack.pod(2)]

    def while_firing(pod) -> None:
        assert pod.get("/readyz").status == 503
        assert '"disk":true' in pod.get("/faults").body.replace(" ", "")
        before = {p.name: prom.value(f'moscow_time_visits_total{{pod="{p.name}"}}') for p in others}
        wait_until(lambda: all(prom.value(f'moscow_time_visits_total{{pod="{n}"}}') > v for n, v in before.items()),
                   PATIENCE, "the other pods' counts to rise in Prometheus")

    took = fault_fires_alert_for_that_pod_only(stack, "disk", "MoscowTimePersistErrors", faulty, while_firing)
    REPORT.append(f"disk fault: fired, resolved and counted on in {took:.1f} s")


def test_a_hung_pod_fires_target_down_for_it_and_peer_fetch_errors_on_the_others(stack):
    prom, hung, others = stack.prom, stack.pod(2), [stack.pod(0), stack.pod(1)]
    down_fire, down_resolve = timing(stack, "MoscowTimeTargetDown")
    peer_fire, peer_resolve = timing(stack, "MoscowTimePeerFetchErrors")
    started = time.monotonic()
    # The hung pod gets no page views: an answer lost to a client timeout would look like a gap.
    with Traffic(others, stack.answers, extra_paths=["/visits/cluster"]):
        hung.pause()
        try:
            wait_firing(prom, "MoscowTimeTargetDown", {hung.name}, down_fire)
            assert prom.targets_up()[hung.name] == "down"
            wait_firing(prom, "MoscowTimePeerFetchErrors", {p.name for p in others}, peer_fire)
        finally:
            hung.resume()
        wait_resolved(prom, "MoscowTimeTargetDown", down_resolve)
        wait_resolved(prom, "MoscowTimePeerFetchErrors", peer_resolve)
    counted(stack, hung)
    REPORT.append(f"hung pod: TargetDown and PeerFetchErrors fired and resolved in {time.monotonic() - started:.1f} s")


def test_a_contended_lock_fires_persist_latency_for_that_pod_only(stack):
    """Another writer holding the pod's `visits.lock` (a second process on a shared volume, or a
    volume stalling on fsync) makes every durable write wait."""
    prom, slow = stack.prom, stack.pod(0)
    fire, resolve = timing(stack, "MoscowTimePersistLatencyHigh")
    started = time.monotonic()
    with Traffic(stack.pods, stack.answers):
        with LockHolder(slow, hold=2.0):
            wait_firing(prom, "MoscowTimePersistLatencyHigh", {slow.name}, fire)
        wait_resolved(prom, "MoscowTimePersistLatencyHigh", resolve)
    REPORT.append(f"contended lock: PersistLatencyHigh fired and resolved in {time.monotonic() - started:.1f} s")


def test_a_stall_fires_persist_stalled_for_that_pod_only_and_counting_goes_on(stack):
    """A hung volume, injected: the pod's durable writes block until the stall is cleared."""
    rule = chart.alert_rules(stack.docs)["MoscowTimePersistStalled"]
    # The stuck write's age must pass the rule's threshold before for: starts.
    threshold = float(re.search(r">\s*([\d.]+)\s*$", rule["expr"]).group(1))

    def while_firing(pod) -> None:
        # Readiness fails once the write is older than the write timeout, which may be longer
        # than the alert's threshold.
        wait_until(lambda: (r := pod.get("/readyz")).status == 503 and "in flight" in r.body, PATIENCE,
                   lambda: f"readiness to name the stuck write: {pod.get('/readyz')}")
        assert pod.get("/healthz").status == 200, "liveness is never affected"

    took = fault_fires_alert_for_that_pod_only(stack, "stall", "MoscowTimePersistStalled", stack.pod(2),
                                               while_firing, extra_wait=threshold)
    REPORT.append(f"stall: PersistStalled fired and resolved, counting on, in {took:.1f} s")


def test_an_unready_fault_fails_readiness_only(stack):
    """No alert of its own: MoscowTimePodNotReady reads kube-state-metrics (see above)."""
    needs_fault_injection(stack)
    pod = stack.pod(0)
    assert pod.put("/faults/unready").status in (200, 204)
    try:
        ready = pod.get("/readyz")
        assert ready.status == 503 and "fault injected" in ready.body, ready
        assert pod.get("/healthz").status == 200
        status, number = pod.visit()
        stack.answers.append((pod.name, status, number))
        assert status == 200, "an unready pod still serves and counts"
    finally:
        assert pod.delete("/faults/unready").status in (200, 204)
    assert pod.get("/readyz").status == 200


def test_a_latency_fault_shows_in_that_pods_request_latency_only(stack):
    """No alert watches page latency; the dashboard's latency panel does, per pod."""
    needs_fault_injection(stack)
    prom, slow = stack.prom, stack.pod(2)
    p99 = ('histogram_quantile(0.99, sum by (pod, le) (rate('
           'moscow_time_http_request_duration_seconds_bucket{{route="/", pod="{}"}}[5s])))')
    # Wide margin: the other pods' p99 stays far below the injected delay even on a busy machine.
    delay = 2.5
    with Traffic(stack.pods, stack.answers):
        assert slow.put(f"/faults/latency?ms={int(delay * 1000)}").status in (200, 204)
        try:
            wait_until(lambda: (prom.value(p99.format(slow.name)) or 0) >= delay, 30,
                       lambda: f"{slow.name}'s p99 page latency to reach {delay} s: {prom.value(p99.format(slow.name))}")
            for other in (stack.pod(0), stack.pod(1)):
                assert prom.value(p99.format(other.name)) < delay, other.name
        finally:
            assert slow.delete("/faults/latency").status in (200, 204)


def test_every_pod_numbered_its_visits_without_gap_or_repeat(stack):
    """Across every fault above: the numbers each pod handed out rise without a repeat, and its
    file holds the last one. The only gaps are the visits a stall's stuck write carried: answered
    503 at the write timeout, written when the write returned, and counted as late."""
    for pod in stack.pods:
        numbers = [n for name, status, n in stack.answers if name == pod.name and status == 200]
        assert numbers, f"{pod.name} counted nothing"
        assert numbers == sorted(set(numbers)), f"{pod.name}: a repeat or a number out of order"
        late = next(float(line.split()[1]) for line in request(pod.url + "/metrics").body.splitlines()
                    if line.startswith("moscow_time_visits_late_total "))
        gaps = numbers[-1] - numbers[0] + 1 - len(numbers)
        assert gaps == late, f"{pod.name}: {gaps} numbers missing, {late} visits counted as late"
        assert pod.file_count() == numbers[-1], pod.name
    assert request(stack.pod(0).url + "/visits/cluster").status == 200
