"""Every query of the shipped Grafana dashboards parses and returns data against the live
Prometheus, with the template variables filled in as a user would pick them."""
from __future__ import annotations

import pytest

import chart
import dashboard
from conftest import REPORT

DASHBOARDS = sorted(chart.DASHBOARDS.glob("*.json"))


def builtins(stack) -> dict[str, str]:
    """Grafana's own variables, as it would set them for this scrape interval."""
    return {"__rate_interval": "1m", "__interval": stack.scrape.interval, "__range": "5m"}


def test_there_are_dashboards_with_queries():
    assert DASHBOARDS, f"no dashboards in {chart.DASHBOARDS}"
    for path in DASHBOARDS:
        assert dashboard.queries(path), f"{path.name} has no queries"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_query_runs_and_returns_data(stack, path):
    board = dashboard.load(path)
    selections = dashboard.selections(stack.prom, board, builtins(stack))
    queries = dashboard.queries(path)
    failures = []
    for q in queries:
        for chosen in selections:
            expr = dashboard.fill(q.expr, chosen, builtins(stack))
            try:
                dashboard.check(stack.prom, expr)
            except (AssertionError, dashboard.QueryError) as e:
                failures.append(f"{q.panel}: {e}")
    assert not failures, "\n".join(failures)
    REPORT.append(f"{path.name}: {len(queries)} queries x {len(selections)} variable choices ran and returned data")
