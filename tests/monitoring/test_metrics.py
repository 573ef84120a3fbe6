"""Prometheus scrapes the three pods as the chart declares, and what it stores matches the disks
and keeps the label sets the README promises."""
from __future__ import annotations

import random

from live import request
from pyhelpers.live import wait_until

import chart

STANDARD_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER"}
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}


def label_names(prom, expr: str) -> set[str]:
    series = prom.api("series", **{"match[]": expr})
    assert series, f"no series match {expr}"
    return set().union(*(s.keys() for s in series)) - {"__name__"}


def test_the_service_monitor_and_the_scrape_annotations_name_the_same_target(stack):
    path, port = chart.scrape_from_annotations(stack.docs)
    assert (path, port) == (stack.scrape.path, stack.scrape.port)


def test_prometheus_scrapes_every_pod_on_the_declared_path_and_port(stack):
    assert stack.prom.targets_up() == {p.name: "up" for p in stack.pods}
    assert stack.prom.value(f'count(up{{namespace="{chart.NAMESPACE}"}} == 1)') == len(stack.pods)


def test_the_cluster_total_in_prometheus_equals_the_sum_of_the_visits_files(stack):
    files = sum(p.file_count() for p in stack.pods)
    assert files > 0, "no visits were made"
    seen = []

    def equal():
        seen.append(stack.prom.value("sum(moscow_time_visits_total)"))
        return seen[-1] == files
    wait_until(equal, 30, lambda: f"sum(moscow_time_visits_total) == {files} (the files); Prometheus says {seen[-1]}")
    for p in stack.pods:
        assert stack.prom.value(f'moscow_time_visits_total{{pod="{p.name}"}}') == p.file_count(), p.name


def test_request_and_persist_series_carry_only_the_promised_labels(stack):
    prom = stack.prom
    assert label_names(prom, "moscow_time_http_requests_total") == TARGET_LABELS | {"method", "route", "status"}
    assert label_names(prom, "moscow_time_http_request_duration_seconds_bucket") == TARGET_LABELS | {"method", "route", "le"}
    assert label_names(prom, "moscow_time_persist_duration_seconds_bucket") == TARGET_LABELS | {"le"}
    assert prom.value('sum(rate(moscow_time_http_requests_total{route="/", status="200"}[1m]))') > 0
    assert prom.value("sum(rate(moscow_time_persist_duration_seconds_count[1m]))") > 0


def test_scanners_cannot_add_series(stack):
    """Random paths and made-up methods fold into route="unmatched" and method="OTHER"."""
    prom, pod = stack.prom, stack.pod(0)
    rng = random.Random(7)
    for i in range(40):
        path = f"/scan-{rng.randrange(10**9)}/{i}.php"
        request(pod.url + path, method=rng.choice(["GET", "FROB", "BREW", "PROPFIND"]))
    wait_until(lambda: (prom.value(f'sum(moscow_time_http_requests_total{{pod="{pod.name}", route="unmatched"}})') or 0) >= 40,
               30, "the scan to be scraped")
    series = prom.api("series", **{"match[]": "moscow_time_http_requests_total"})
    routes = {s["route"] for s in series}
    methods = {s["method"] for s in series}
    assert not any(r.startswith("/scan-") for r in routes), routes
    assert methods <= STANDARD_METHODS, methods
    unmatched = {(s["method"], s["status"]) for s in series if s["route"] == "unmatched" and s["pod"] == pod.name}
    assert unmatched <= {("GET", "404"), ("OTHER", "405"), ("OTHER", "404")}, unmatched
