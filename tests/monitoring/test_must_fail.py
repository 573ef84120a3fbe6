"""The harness can fail: a broken dashboard query, a query without data, an unknown template
variable, a rule that never fires and an alert firing for a pod it should not are all caught."""
from __future__ import annotations

import pytest

import chart
import dashboard
from live import QueryError
from test_live_alerts import CANARY, wait_firing

QUERY = 'sum(moscow_time_visits_total{namespace="$namespace", pod=~"$pod"})'
VALUES = {"namespace": chart.NAMESPACE, "pod": ".*"}


def test_a_query_that_does_not_parse_fails(stack):
    broken = dashboard.fill(QUERY.replace(")", "", 1), VALUES, {})
    with pytest.raises(QueryError, match="parse"):
        dashboard.check(stack.prom, broken)


def test_a_query_without_data_fails(stack):
    misspelt = dashboard.fill(QUERY.replace("visits_total", "visit_total"), VALUES, {})
    with pytest.raises(AssertionError, match="no data"):
        dashboard.check(stack.prom, misspelt)


def test_an_unknown_template_variable_fails():
    with pytest.raises(QueryError, match="unknown template variable"):
        dashboard.fill(QUERY.replace("$pod", "$instance"), VALUES, {})


def test_the_same_query_filled_in_passes(stack):
    assert dashboard.check(stack.prom, dashboard.fill(QUERY, VALUES, {}))


def test_a_rule_that_never_fires_fails_the_wait(stack):
    assert CANARY in chart.alert_rules(stack.docs), "the canary rule is not loaded"
    with pytest.raises(AssertionError, match=f"{CANARY} to fire"):
        wait_firing(stack.prom, CANARY, {stack.pod(0).name}, timeout=3)


class FiringFor:
    """A stand-in for the Prometheus API with an alert firing for the given pods."""

    def __init__(self, pods: set[str]):
        self.pods = pods

    def alerts(self, name: str, state: str = "firing") -> set[str]:
        return set(self.pods) if state == "firing" else set()


def test_an_alert_firing_for_another_pod_too_fails_the_wait():
    with pytest.raises(AssertionError, match="also fires"):
        wait_firing(FiringFor({"moscow-time-0", "moscow-time-1"}), "X", {"moscow-time-1"}, timeout=1)
