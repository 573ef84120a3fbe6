"""One image reference everywhere: the quick start builds, saves and loads the image that the chart
(installed with the quick start's own flags) and k8s/ ask the cluster for.

The container stage (tests/container/) runs the build and the save for real and reads the
archive's tags; these tests check the texts, and that a change to only one of them is caught.
"""
from __future__ import annotations

import pytest
import yaml

from conftest import CHART, ROOT
from pyhelpers import image_reference

README = (ROOT / "README.md").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def chart_image(readme: str = README, *extra: str) -> str:
    return image_reference.chart_image(readme, *extra)


k8s_image = image_reference.k8s_image


def test_the_quick_start_builds_saves_and_loads_the_image_the_chart_and_k8s_deploy():
    assert image_reference.mismatches(README, DOCKERFILE, chart_image(), k8s_image()) == []


def test_the_quick_starts_tag_is_the_release_version():
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert image_reference.normalize(chart_image()) == f"docker.io/library/moscow-time:{version}"


@pytest.mark.parametrize("ref, expected", [
    ("moscow-time:0.1.0", "docker.io/library/moscow-time:0.1.0"),
    ("docker.io/library/moscow-time:0.1.0", "docker.io/library/moscow-time:0.1.0"),
    ("docker.io/moscow-time:0.1.0", "docker.io/library/moscow-time:0.1.0"),
    ("localhost/moscow-time:0.1.0", "localhost/moscow-time:0.1.0"),
    ("team/moscow-time", "docker.io/team/moscow-time:latest"),
    ("127.0.0.1:5000/moscow-time@sha256:ab", "127.0.0.1:5000/moscow-time@sha256:ab"),
])
def test_names_are_normalized_as_a_container_runtime_does(ref, expected):
    assert image_reference.normalize(ref) == expected


# --- must-fail: one of the names changed alone -----------------------------------------------------

def test_a_chart_default_changed_alone_is_caught():
    moved = chart_image(README, "--set", "image.tag=0.1.1")
    problems = image_reference.mismatches(README, DOCKERFILE, moved, k8s_image())
    assert any("podman build" in p and "0.1.1" in p for p in problems), problems


@pytest.mark.parametrize("old, new, expected", [
    ("podman build -t docker.io/library/moscow-time:0.1.0", "podman build -t docker.io/library/moscow-time:0.2.0",
     "podman build"),
    ("podman build -t docker.io/library/moscow-time:0.1.0", "podman build -t moscow-time:0.1.0",
     "localhost/moscow-time:0.1.0"),
    ("-o moscow-time.tar docker.io/library/moscow-time:0.1.0", "-o moscow-time.tar localhost/moscow-time:0.1.0",
     "podman save"),
    ("kind load image-archive moscow-time.tar", "kind load image-archive image.tar", "does not load"),
])
def test_a_readme_name_changed_alone_is_caught(old, new, expected):
    assert old in README
    problems = image_reference.mismatches(README.replace(old, new, 1), DOCKERFILE, chart_image(), k8s_image())
    assert any(expected in p for p in problems), problems


def test_podman_puts_a_name_without_a_registry_under_localhost():
    # The container stage checks this model of podman against a real build's archive.
    assert image_reference.podman_name("moscow-time:0.1.0") == "localhost/moscow-time:0.1.0"
    assert image_reference.podman_name("docker.io/library/moscow-time:0.1.0") == "docker.io/library/moscow-time:0.1.0"


def test_a_k8s_or_dockerfile_name_changed_alone_is_caught():
    problems = image_reference.mismatches(README, DOCKERFILE, chart_image(), "moscow-time:0.0.9")
    assert any("k8s/" in p for p in problems), problems
    changed = DOCKERFILE.replace("podman build -t docker.io/library/moscow-time:0.1.0 .",
                                 "podman build -t docker.io/library/moscow-time:latest .", 1)
    assert changed != DOCKERFILE
    problems = image_reference.mismatches(README, changed, chart_image(), k8s_image())
    assert any("Dockerfile" in p for p in problems), problems
