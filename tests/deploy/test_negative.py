"""Must-fail cases: the schema, the template guards and the validators reject what they should.

Each case is a bad input and the error it must produce; a case passes only when the command fails
with that error, so a check that silently stopped checking shows up here.
"""
from __future__ import annotations

import re
import subprocess

import pytest

from conftest import CHART, HELM, KUBE_VERSIONS, RELEASE, render_text
from validators import kubernetes_validate


def helm_template(*args: str) -> list[str]:
    return [HELM, "template", RELEASE, str(CHART), *args]


REJECTED_BY_HELM = [
    pytest.param(helm_template("--set", "notAKey=1"), "additional properties 'notAKey' not allowed",
                 id="schema-rejects-an-unknown-top-level-key"),
    pytest.param(helm_template("--set", "persistence.replica=2"), "additional properties 'replica' not allowed",
                 id="schema-rejects-an-unknown-nested-key"),
    pytest.param(helm_template("--set", "config.data_dir=/x"), "additional properties 'data_dir' not allowed",
                 id="schema-rejects-data_dir-in-config-because-env-sets-it"),
    pytest.param(helm_template("--set-string", "replicaCount=three"), "replicaCount.*want integer",
                 id="schema-rejects-a-string-replicaCount"),
    pytest.param(helm_template("--set-string", "persistence.enabled=yes"), "persistence/enabled.*want boolean",
                 id="schema-rejects-a-string-persistence.enabled"),
    pytest.param([HELM, "lint", "--strict", str(CHART), "--set", "notAKey=1"],
                 "additional properties 'notAKey' not allowed", id="helm-lint-strict-fails-on-an-unknown-key"),
    pytest.param(helm_template("--set", "terminationGracePeriodSeconds=20"),
                 r"terminationGracePeriodSeconds \(20\) must be greater",
                 id="a-grace-period-not-above-the-shutdown-timeout-is-refused"),
    pytest.param(helm_template("--set", "podManagementPolicy=Sometimes"), "podManagementPolicy",
                 id="podManagementPolicy-outside-the-enum-is-refused"),
]


@pytest.mark.parametrize("cmd, error", REJECTED_BY_HELM)
def test_helm_refuses_bad_values(cmd, error):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0, "the command succeeded"
    assert re.search(error, output), f"the error does not match /{error}/:\n{output[-2000:]}"


def test_kubernetes_validate_rejects_a_misspelt_field(tmp_path):
    good = render_text("chart:default")
    line = "\n  podManagementPolicy: Parallel\n"
    assert line in good, "the default render has no podManagementPolicy line to misspell"
    bad = tmp_path / "misspelt.yaml"
    bad.write_text(good.replace(line, line + "  podManagmentPolicy: Parallel\n", 1))
    problems = kubernetes_validate(KUBE_VERSIONS[-1], bad)
    assert any("podManagmentPolicy" in p for p in problems), problems


def test_an_unknown_kind_that_is_not_a_listed_crd_fails_validation(tmp_path):
    widget = tmp_path / "widget.yaml"
    widget.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n")
    problems = kubernetes_validate(KUBE_VERSIONS[-1], widget)
    assert "unknown kind/apiVersion (not a listed CRD): Widget:example.com/v1" in problems, problems
