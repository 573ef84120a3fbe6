"""The shutdown delay and the grace-period rule: delay + shutdown timeout < terminationGracePeriodSeconds.

On SIGTERM a pod keeps serving for `shutdown_delay_secs` (readiness failing, `Connection: close`)
so that kube-proxy and ingress controllers stop routing to it, then drains for at most
`shutdown_timeout_secs`. The kubelet SIGKILLs at `terminationGracePeriodSeconds`, so both must
fit in it: the chart refuses to render otherwise, and k8s/ must keep to the same rule.
"""
from __future__ import annotations

import subprocess

import pytest
import yaml

from conftest import CHART, HELM, NAMESPACE, RELEASE, config_json, the_statefulset

CHART_DELAY_SECS = 5


def helm_template(*sets: str) -> subprocess.CompletedProcess:
    args = [HELM, "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True)


def test_every_render_sets_the_delay_and_fits_delay_and_drain_in_the_grace_period(docs):
    sts = the_statefulset(docs)
    _, cfg, _ = config_json(docs, sts)
    grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert cfg["shutdown_delay_secs"] == CHART_DELAY_SECS
    assert cfg["shutdown_delay_secs"] + cfg["shutdown_timeout_secs"] < grace


@pytest.mark.parametrize("sets, delay, timeout, grace", [
    (["config.shutdown_delay_secs=10"], 10, 20, 30),
    (["terminationGracePeriodSeconds=25"], 5, 20, 25),
    (["config.shutdown_delay_secs=300", "terminationGracePeriodSeconds=320"], 300, 20, 320),
])
def test_a_grace_period_that_does_not_cover_delay_and_drain_is_refused(sets, delay, timeout, grace):
    result = helm_template(*sets)
    assert result.returncode != 0, "rendered although the kubelet would SIGKILL during the drain"
    message = (f"terminationGracePeriodSeconds ({grace}) must be greater than "
               f"config.shutdown_delay_secs ({delay}) + config.shutdown_timeout_secs ({timeout})")
    assert message in result.stderr, result.stderr


def test_one_second_of_headroom_is_enough():
    result = helm_template("config.shutdown_delay_secs=9")
    assert result.returncode == 0, result.stderr


def test_a_delay_of_zero_renders():
    result = helm_template("config.shutdown_delay_secs=0")
    assert result.returncode == 0, result.stderr
    sts = next(d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "StatefulSet")
    assert config_json([], sts)[1]["shutdown_delay_secs"] == 0


@pytest.mark.parametrize("value, error", [
    ("-1", "minimum: got -1, want 0"),
    ("301", "maximum: got 301, want 300"),
])
def test_the_schema_keeps_the_delay_between_0_and_300(value, error):
    result = helm_template(f"config.shutdown_delay_secs={value}", "terminationGracePeriodSeconds=400")
    assert result.returncode != 0
    assert "shutdown_delay_secs" in result.stderr and error in result.stderr, result.stderr


def test_the_schema_refuses_a_delay_that_is_not_an_integer():
    args = [HELM, "template", RELEASE, str(CHART), "--set-string", "config.shutdown_delay_secs=5s"]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode != 0
    assert "shutdown_delay_secs" in result.stderr and "want integer" in result.stderr, result.stderr
