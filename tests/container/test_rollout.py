"""The rollout rehearsal with containers (tests/rollout/containers.py says what it does): three
containers run as the rendered chart's pod, behind HAProxy like kube-proxy, rolled onto a second
tag of the image under wrk's load. With the chart's shutdown delay no request fails and the
`visits` files sum to the 200 answers; with the delay at 0 requests do fail (the must-fail case:
the rehearsal can tell the difference)."""
from __future__ import annotations

import json
import shutil
import sys

import pytest

from pyhelpers.tools import HELM, ROOT

sys.path.insert(0, str(ROOT / "tests" / "rollout"))
import containers  # noqa: E402


@pytest.fixture(scope="module")
def rollout(image):
    for tool in ("haproxy", "wrk"):
        assert shutil.which(tool), f"{tool} is not installed (scripts/test-container installs it)"
    spec = containers.render_pod_spec(HELM)
    print(f"pod spec from the chart: env {spec.env}, flags {' '.join(spec.flags)}, grace period "
          f"{spec.grace_secs} s, config.json {json.loads(spec.config_json)}")
    with containers.workspace(image, spec) as (work, next_image):
        yield work, next_image, spec


def test_with_the_charts_delay_no_request_fails_and_no_visit_is_lost(image, rollout):
    work, next_image, spec = rollout
    containers.rehearse_in(work, image, next_image, spec, delay_override=None)


def test_must_fail_without_the_delay_requests_fail(image, rollout):
    work, next_image, spec = rollout
    containers.rehearse_in(work, image, next_image, spec, delay_override=0)
