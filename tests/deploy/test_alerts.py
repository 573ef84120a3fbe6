"""The PrometheusRule's alerts are valid PromQL and fire on what they promise (promtool).

promtool comes from Debian's `prometheus` package (scripts/test installs it for the Rust suite);
without it these tests are skipped with a reason.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from conftest import by_kind, render

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(not PROMTOOL, reason="promtool not installed (apt-get install prometheus)")
NS = "moscow-time"


def rules_file(tmp_path):
    rule = by_kind(render("chart:monitoring"), "PrometheusRule")[0]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path, {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}


def expected(rule: dict, pod: str) -> dict:
    ann = {k: v.replace("{{ $labels.pod }}", pod).replace("{{ $labels.namespace }}", NS)
           for k, v in rule["annotations"].items()}
    return {"exp_labels": {**rule["labels"], "namespace": NS, "pod": pod}, "exp_annotations": ann}


def test_the_alert_rules_pass_promtool_check(tmp_path):
    path, _ = rules_file(tmp_path)
    out = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_alerts_fire_for_persist_errors_slow_and_stuck_writes_and_unready_pods(tmp_path):
    path, rules = rules_file(tmp_path)
    sel = f'namespace="{NS}"'
    series = [
        # pod 0: one failed durable write; fast writes
        (f'moscow_time_persist_errors_total{{{sel},pod="moscow-time-0"}}', "0 0 1 1 1 1 1 1 1 1 1"),
        (f'moscow_time_persist_duration_seconds_bucket{{{sel},pod="moscow-time-0",le="0.1"}}', "0+10x30"),
        (f'moscow_time_persist_duration_seconds_bucket{{{sel},pod="moscow-time-0",le="1"}}', "0+10x30"),
        (f'moscow_time_persist_duration_seconds_bucket{{{sel},pod="moscow-time-0",le="+Inf"}}', "0+10x30"),
        # pod 1: no errors, every write between 0.1 s and 1 s
        (f'moscow_time_persist_errors_total{{{sel},pod="moscow-time-1"}}', "0x10"),
        (f'moscow_time_persist_duration_seconds_bucket{{{sel},pod="moscow-time-1",le="0.1"}}', "0x30"),
        (f'moscow_time_persist_duration_seconds_bucket{{{sel},pod="moscow-time-1",le="1"}}', "0+10x30"),
        (f'moscow_time_persist_duration_seconds_bucket{{{sel},pod="moscow-time-1",le="+Inf"}}', "0+10x30"),
        # pod 2 never becomes ready; pod 0 is ready
        (f'kube_pod_status_ready{{{sel},pod="moscow-time-2",condition="true"}}', "0x30"),
        (f'kube_pod_status_ready{{{sel},pod="moscow-time-0",condition="true"}}', "1x30"),
        # pod 2: one durable write stuck from minute 2 to minute 6 (a hung volume); pod 0's return
        (f'moscow_time_persist_in_flight_seconds{{{sel},pod="moscow-time-2"}}', "0 0 60 120 180 240 300 0 0 0 0"),
        (f'moscow_time_persist_in_flight_seconds{{{sel},pod="moscow-time-0"}}', "0 0 0.001 0 0 0 0 0 0 0 0"),
        # a pod of another release with the same prefix is not ours
        (f'kube_pod_status_ready{{{sel},pod="moscow-time-other-0",condition="true"}}', "0x30"),
    ]
    tests = {
        "rule_files": [str(path)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "MoscowTimePersistErrors",
                 "exp_alerts": [expected(rules["MoscowTimePersistErrors"], "moscow-time-0")]},
                {"eval_time": "1m", "alertname": "MoscowTimePersistErrors", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "MoscowTimePersistLatencyHigh",
                 "exp_alerts": [expected(rules["MoscowTimePersistLatencyHigh"], "moscow-time-1")]},
                {"eval_time": "10m", "alertname": "MoscowTimePodNotReady",
                 "exp_alerts": [expected(rules["MoscowTimePodNotReady"], "moscow-time-2")]},
                {"eval_time": "2m", "alertname": "MoscowTimePodNotReady", "exp_alerts": []},
                {"eval_time": "4m", "alertname": "MoscowTimePersistStalled",
                 "exp_alerts": [expected(rules["MoscowTimePersistStalled"], "moscow-time-2")]},
                {"eval_time": "2m", "alertname": "MoscowTimePersistStalled", "exp_alerts": []},
                {"eval_time": "9m", "alertname": "MoscowTimePersistStalled", "exp_alerts": []},
            ],
        }],
    }
    tfile = tmp_path / "tests.yaml"
    tfile.write_text(yaml.safe_dump(tests))
    out = subprocess.run([PROMTOOL, "test", "rules", str(tfile)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
