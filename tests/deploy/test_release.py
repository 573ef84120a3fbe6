"""What a release relies on, checked without a registry.

One version number for everything that is released: Cargo.toml's `version` (and Cargo.lock's
entry for the crate), the chart's `version` and `appVersion`, the newest entry of CHANGELOG.md
(Keep a Changelog) and the Dockerfile's default `VERSION` label. scripts/release packages the
chart with Cargo.toml's version and refuses to run when these disagree; the whole release path
(registry, push, pull by digest, run) is tested by the container stage.

Also: the chart composes `image.registry`, `image.repository`, `image.tag` and `image.digest`
into one reference like bitnami's common.images.image, and its schema refuses a registry with a
scheme or a trailing slash.
"""
from __future__ import annotations

import datetime
import re
import subprocess
import tomllib

import pytest
import yaml

from conftest import CHART, HELM, ROOT

SEMVER = r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?"
# "## [1.2.3] - 2026-11-26" (a released version) or "## [Unreleased]"
RELEASE_HEADING = re.compile(rf"^## \[(?P<version>{SEMVER})\] - (?P<date>\d{{4}}-\d{{2}}-\d{{2}})$")
CHANGE_TYPES = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
DIGEST = "sha256:" + "0123456789abcdef" * 4


def changelog_problems(text: str) -> list[str]:
    """What keeps CHANGELOG.md text from being Keep a Changelog with released entries, newest first."""
    lines = text.splitlines()
    problems = []
    if not lines or lines[0] != "# Changelog":
        problems.append("the first line is not '# Changelog'")
    headings = [line for line in lines if line.startswith("## ")]
    if not headings or headings[0] != "## [Unreleased]":
        problems.append("the first '## ' heading is not '## [Unreleased]'")
    released = []
    for heading in headings[1:]:
        match = RELEASE_HEADING.match(heading)
        if not match:
            problems.append(f"{heading!r} is not '## [X.Y.Z] - YYYY-MM-DD'")
            continue
        try:
            datetime.date.fromisoformat(match["date"])
        except ValueError:
            problems.append(f"{heading!r} has no valid date")
        released.append(tuple(int(n) for n in match.group(2, 3, 4)))
    if not released:
        problems.append("no released version ('## [X.Y.Z] - YYYY-MM-DD')")
    if released != sorted(released, reverse=True) or len(set(released)) != len(released):
        problems.append(f"released versions are not newest first without repeats: {released}")
    for line in lines:
        if line.startswith("### ") and line[4:] not in CHANGE_TYPES:
            problems.append(f"{line!r} is not one of {sorted(CHANGE_TYPES)}")
    return problems


def changelog_latest_version(text: str) -> str | None:
    """The version of the newest released entry (the first '## [X.Y.Z] - date' heading)."""
    for line in text.splitlines():
        match = RELEASE_HEADING.match(line)
        if match:
            return match["version"]
    return None


def released_versions(cargo_toml: str, cargo_lock: str, chart_yaml: str, changelog: str,
                      dockerfile: str) -> dict[str, str | None]:
    """Every place that states the release's version, by where it is stated."""
    cargo = tomllib.loads(cargo_toml)
    name = cargo["package"]["name"]
    locked = [p["version"] for p in tomllib.loads(cargo_lock)["package"] if p["name"] == name]
    chart = yaml.safe_load(chart_yaml)
    label = re.search(r"^ARG VERSION=(\S+)$", dockerfile, re.MULTILINE)
    return {
        "Cargo.toml version": cargo["package"]["version"],
        "Cargo.lock version of the crate": locked[0] if len(locked) == 1 else None,
        "Chart.yaml version": str(chart["version"]),
        "Chart.yaml appVersion": str(chart["appVersion"]),
        "CHANGELOG.md newest entry": changelog_latest_version(changelog),
        "Dockerfile ARG VERSION default": label[1] if label else None,
    }


def disagreements(versions: dict[str, str | None]) -> list[str]:
    """Where a stated version differs from Cargo.toml's (the one place the release reads)."""
    want = versions["Cargo.toml version"]
    return [f"{where} is {got!r}, Cargo.toml says {want!r}" for where, got in versions.items() if got != want]


def repository_texts() -> dict[str, str]:
    return {
        "cargo_toml": (ROOT / "Cargo.toml").read_text(),
        "cargo_lock": (ROOT / "Cargo.lock").read_text(),
        "chart_yaml": (CHART / "Chart.yaml").read_text(),
        "changelog": (ROOT / "CHANGELOG.md").read_text(),
        "dockerfile": (ROOT / "Dockerfile").read_text(),
    }


def test_the_crate_the_chart_the_changelog_and_the_image_label_state_one_version():
    versions = released_versions(**repository_texts())
    assert re.fullmatch(SEMVER, versions["Cargo.toml version"])
    assert disagreements(versions) == []


def test_the_changelog_is_keep_a_changelog_with_the_newest_release_first():
    assert changelog_problems((ROOT / "CHANGELOG.md").read_text()) == []


@pytest.mark.parametrize("where, old, new", [
    ("chart_yaml", "\nversion: ", "\nversion: 9.9.9\nx: "),
    ("chart_yaml", "\nappVersion: ", "\nappVersion: \"9.9.9\"\nx: "),
    ("changelog", "## [Unreleased]\n", "## [Unreleased]\n\n## [9.9.9] - 2026-01-01\n"),
    ("dockerfile", "\nARG VERSION=", "\nARG VERSION=9.9.9\nARG X="),
])
def test_a_version_that_differs_is_caught(where, old, new):
    """Must-fail: one place bumped without the others."""
    texts = repository_texts()
    assert old in texts[where]
    texts[where] = texts[where].replace(old, new, 1)
    problems = disagreements(released_versions(**texts))
    assert len(problems) == 1 and "'9.9.9'" in problems[0], problems


@pytest.mark.parametrize("text, expected", [
    ("# Changelog\n\n## [0.1.0] - 2026-01-01\n", "the first '## ' heading is not '## [Unreleased]'"),
    ("# Changelog\n## [Unreleased]\n## [0.1.0] - 2026-02-30\n", "has no valid date"),
    ("# Changelog\n## [Unreleased]\n## 0.1.0 - 2026-01-01\n", "is not '## [X.Y.Z] - YYYY-MM-DD'"),
    ("# Changelog\n## [Unreleased]\n## [0.1.0] - 2026-01-01\n## [0.2.0] - 2026-02-01\n",
     "not newest first"),
    ("# Changelog\n## [Unreleased]\n## [0.1.0] - 2026-01-01\n### New stuff\n", "is not one of"),
    ("# Changelog\n## [Unreleased]\n", "no released version"),
])
def test_a_malformed_changelog_is_caught(text, expected):
    """Must-fail: the format check rejects what Keep a Changelog does not allow."""
    assert any(expected in p for p in changelog_problems(text)), changelog_problems(text)


def rendered_image(*sets: str) -> str:
    args = [a for s in sets for a in ("--set", s)]
    out = subprocess.run([HELM, "template", "moscow-time", str(CHART), *args],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    sts = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "StatefulSet")
    return next(c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "moscow-time")["image"]


@pytest.mark.parametrize("sets, expected", [
    ((), "moscow-time:{app}"),
    (("image.registry=127.0.0.1:5000",), "127.0.0.1:5000/moscow-time:{app}"),
    (("image.registry=registry.example.com/team", "image.tag=1.2.3"), "registry.example.com/team/moscow-time:1.2.3"),
    (("image.registry=127.0.0.1:5000", f"image.digest={DIGEST}"), f"127.0.0.1:5000/moscow-time@{DIGEST}"),
    (("image.registry=127.0.0.1:5000", "image.tag=1.2.3", f"image.digest={DIGEST}"),
     f"127.0.0.1:5000/moscow-time@{DIGEST}"),
    ((f"image.digest={DIGEST}",), f"moscow-time@{DIGEST}"),
])
def test_the_image_reference_composes_registry_repository_tag_and_digest(sets, expected):
    app = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert rendered_image(*sets) == expected.format(app=app)


@pytest.mark.parametrize("registry", ["https://registry.example.com", "registry.example.com/", "-bad.example",
                                      "registry.example.com:port"])
def test_the_schema_refuses_a_malformed_registry(registry):
    run = subprocess.run([HELM, "template", "moscow-time", str(CHART), "--set", f"image.registry={registry}"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "image/registry" in run.stderr, run.stderr
