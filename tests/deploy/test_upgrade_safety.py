"""Upgrade safety: `helm upgrade` must never need to change a StatefulSet field Kubernetes forbids
changing, and diagnostic mode changes nothing but the command and the probes.

Kubernetes refuses any update of a StatefulSet's `selector`, `serviceName`, `podManagementPolicy`
and `volumeClaimTemplates` ("updates to statefulset spec for fields other than ... are
forbidden"). For every ci/ scenario these fields are compared with the record in
immutable-fields.json; a difference fails unless Chart.yaml's major version was raised past the
one the record was taken at. After such a raise (or for a new scenario), record again:

    .tools/venv/bin/python tests/deploy/test_upgrade_safety.py --record

which refuses to overwrite a changed field while the major version is still the recorded one.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import (CHART, HELM, KUBE_VERSIONS, NAMESPACE, RELEASE, SCENARIOS, main_container,
                      render, the_statefulset)
from pyhelpers.live import free_port, log_contains, stop_process, wait_until
from test_contract import BIN, get, pod_environment
from validators import kubernetes_validate

RECORD = Path(__file__).with_name("immutable-fields.json")
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


# ---------------------------------------------------------------- the fields and the comparison

def chart_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["version"])


def major(version: str) -> int:
    return int(version.split(".", 1)[0])


def immutable_fields(sts: dict) -> dict:
    """The parts of a rendered StatefulSet that no update may change."""
    spec = sts["spec"]
    return {
        "spec.selector": spec.get("selector"),
        "spec.serviceName": spec.get("serviceName"),
        "spec.podManagementPolicy": spec.get("podManagementPolicy", "OrderedReady"),
        "spec.volumeClaimTemplates": [
            {"name": t["metadata"]["name"],
             "labels": t["metadata"].get("labels", {}),
             "annotations": t["metadata"].get("annotations", {}),
             "spec": t.get("spec", {})}
            for t in spec.get("volumeClaimTemplates", [])
        ],
    }


def changed_fields(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """(field path, recorded value, rendered value) for every immutable field that differs."""
    changes = [(f, old.get(f), new.get(f)) for f in ("spec.selector", "spec.serviceName",
                                                      "spec.podManagementPolicy")
               if old.get(f) != new.get(f)]
    old_claims = {t["name"]: t for t in old.get("spec.volumeClaimTemplates", [])}
    new_claims = {t["name"]: t for t in new.get("spec.volumeClaimTemplates", [])}
    if list(old_claims) != list(new_claims):
        changes.append(("spec.volumeClaimTemplates[*].metadata.name", list(old_claims), list(new_claims)))
    for name in old_claims.keys() & new_claims.keys():
        for part, path in (("labels", "metadata.labels"), ("annotations", "metadata.annotations"),
                           ("spec", "spec")):
            if old_claims[name][part] != new_claims[name][part]:
                changes.append((f"spec.volumeClaimTemplates[{name}].{path}",
                                old_claims[name][part], new_claims[name][part]))
    return changes


def show(value) -> str:
    return json.dumps(value, sort_keys=True)


def explain(scenario: str, sts_name: str, field: str, old, new, recorded_major: int, version: str) -> str:
    """The failure message: which field, old and new value, and what a user would have to do."""
    text = (
        f"ci/{scenario}-values.yaml: the StatefulSet field {field} changed, and Kubernetes forbids "
        f"changing it on an installed release (helm upgrade would fail).\n"
        f"  recorded (chart major {recorded_major}): {show(old)}\n"
        f"  rendered now (chart {version}): {show(new)}\n"
        f"Either keep the recorded value, or make this a breaking release: raise the major version "
        f"in Chart.yaml past {recorded_major}, record again with "
        f"`.tools/venv/bin/python tests/deploy/test_upgrade_safety.py --record`, and tell users "
        f"(CHANGELOG.md) to run before upgrading:\n"
        f"  kubectl delete statefulset {sts_name} --cascade=orphan   # pods and PVCs stay\n"
        f"  helm upgrade <release> helm/moscow-time ...   # a new StatefulSet, which adopts them\n"
    )
    if field.startswith("spec.volumeClaimTemplates"):
        text += "Existing PVCs keep what they were created with; only new PVCs follow the new template.\n"
    if field == "spec.selector":
        text += ("Pods whose labels the new selector does not match are not adopted: delete them one "
                 f"by one (`kubectl delete pod {sts_name}-N`) so the new StatefulSet recreates them.\n")
    return text


def problems(scenario: str, sts: dict, record: dict, version: str) -> list[str]:
    """Every immutable-field change against the record, unless the major version was raised."""
    recorded_major = record["chart_major"]
    if major(version) > recorded_major:
        return []
    old = record["scenarios"][scenario]
    return [explain(scenario, sts["metadata"]["name"], field, a, b, recorded_major, version)
            for field, a, b in changed_fields(old, immutable_fields(sts))]


def load_record() -> dict:
    return json.loads(RECORD.read_text())


def helm_template_text(scenario: str, *args: str) -> str:
    """Like conftest.render_text, with extra helm arguments (not cached)."""
    return subprocess.run([HELM, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                           "-f", str(CHART / "ci" / f"{scenario}-values.yaml"), *args],
                          check=True, capture_output=True, text=True, timeout=120).stdout


def helm_template(scenario: str, *args: str) -> tuple[dict, ...]:
    return tuple(d for d in yaml.safe_load_all(helm_template_text(scenario, *args)) if d)


# ---------------------------------------------------------------- upgrade safety

def test_the_record_covers_exactly_the_ci_scenarios():
    record = load_record()
    assert sorted(record["scenarios"]) == SCENARIOS, (
        "the scenarios changed; record again: "
        ".tools/venv/bin/python tests/deploy/test_upgrade_safety.py --record")
    assert record["release"] == RELEASE and isinstance(record["chart_major"], int)
    assert major(chart_version()) >= record["chart_major"], "Chart.yaml's major version went down"


def test_the_record_is_for_the_charts_major_version():
    # After a major version raise the record must be taken again, or the new major goes unguarded.
    recorded, now = load_record()["chart_major"], major(chart_version())
    assert recorded == now, (
        f"Chart.yaml is at major version {now}, the record of immutable fields at {recorded}: record "
        "again with .tools/venv/bin/python tests/deploy/test_upgrade_safety.py --record")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_immutable_statefulset_fields_match_the_record(scenario):
    record = load_record()
    if scenario not in record["scenarios"]:
        pytest.fail(f"ci/{scenario}-values.yaml has no record; record it with --record")
    found = problems(scenario, the_statefulset(render(f"chart:{scenario}")), record, chart_version())
    assert not found, "\n".join(found)


def test_a_changed_claim_template_label_fails_with_what_to_do():
    # Must fail: a label injected through a value lands in the claim template.
    sts = the_statefulset(helm_template("default", "--set", "persistence.labels.tier=gold"))
    record = load_record()
    found = problems("default", sts, record, chart_version())
    assert len(found) == 1, found
    message = found[0]
    old_labels = record["scenarios"]["default"]["spec.volumeClaimTemplates"][0]["labels"]
    assert "spec.volumeClaimTemplates[data].metadata.labels" in message
    assert show(old_labels) in message and '"tier": "gold"' in message
    assert f"kubectl delete statefulset {sts['metadata']['name']} --cascade=orphan" in message
    assert "helm upgrade" in message and "major version" in message


def test_a_raised_major_version_accepts_the_change():
    sts = the_statefulset(helm_template("default", "--set", "persistence.labels.tier=gold"))
    record = load_record()
    assert problems("default", sts, record, f"{record['chart_major']}.99.0")
    assert not problems("default", sts, record, f"{record['chart_major'] + 1}.0.0")


@pytest.mark.parametrize("field, mutate", [
    ("spec.podManagementPolicy", lambda s: s["spec"].update(podManagementPolicy="OrderedReady")),
    ("spec.serviceName", lambda s: s["spec"].update(serviceName="moscow-time-peers")),
    ("spec.selector", lambda s: s["spec"]["selector"]["matchLabels"].update(tier="web")),
    ("spec.volumeClaimTemplates[data].spec", lambda s: s["spec"]["volumeClaimTemplates"][0]["spec"]
     ["resources"]["requests"].update(storage="2Gi")),
    ("spec.volumeClaimTemplates[*].metadata.name",
     lambda s: s["spec"]["volumeClaimTemplates"][0]["metadata"].update(name="visits")),
])
def test_every_immutable_field_is_watched(field, mutate):
    # Must fail: the rendered default StatefulSet with one immutable field changed by hand.
    sts = copy.deepcopy(the_statefulset(render("chart:default")))
    mutate(sts)
    found = problems("default", sts, load_record(), chart_version())
    assert len(found) == 1 and f"field {field} changed" in found[0], found


def test_mutable_settings_leave_the_immutable_fields_alone():
    sts = the_statefulset(helm_template(
        "default", "--set", "replicaCount=5", "--set", "image.tag=9.9.9",
        "--set", "updateStrategy.rollingUpdate.partition=3", "--set", "diagnosticMode.enabled=true",
        "--set", "persistentVolumeClaimRetentionPolicy.whenScaled=Delete", "--set", "podLabels.x=y"))
    assert not problems("default", sts, load_record(), chart_version())


# ---------------------------------------------------------------- diagnostic mode

def without_command_and_probes(pod_spec: dict) -> dict:
    spec = copy.deepcopy(pod_spec)
    for c in spec["containers"]:
        if c["name"] == "moscow-time":
            for key in ("args", *PROBES):
                c.pop(key, None)
    return spec


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_diagnostic_mode_runs_idle_without_probes_and_changes_nothing_else(scenario):
    normal = the_statefulset(render(f"chart:{scenario}"))
    diag = the_statefulset(helm_template(scenario, "--set", "diagnosticMode.enabled=true"))
    c = main_container(diag)
    assert c["args"] == ["idle"] and "command" not in c, "the image ENTRYPOINT must run `moscow-time idle`"
    assert "args" not in main_container(normal)
    pod = diag["spec"]["template"]["spec"]
    for container in pod["containers"] + pod.get("initContainers", []):
        assert not set(PROBES) & set(container), f"{container['name']} still has a probe"
    assert pod["securityContext"] == normal["spec"]["template"]["spec"]["securityContext"]
    assert c["securityContext"] == main_container(normal)["securityContext"]
    assert pod.get("volumes") == normal["spec"]["template"]["spec"].get("volumes")
    assert c["volumeMounts"] == main_container(normal)["volumeMounts"]
    assert without_command_and_probes(pod) == without_command_and_probes(normal["spec"]["template"]["spec"])
    assert diag["spec"]["template"]["metadata"] == normal["spec"]["template"]["metadata"]
    assert immutable_fields(diag) == immutable_fields(normal), "diagnostic mode must be an allowed upgrade"


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_the_diagnostic_mode_render_matches_the_kubernetes_schemas(version, tmp_path):
    manifest = tmp_path / "chart-diagnostic-mode.yaml"
    manifest.write_text(helm_template_text("default", "--set", "diagnosticMode.enabled=true"))
    assert kubernetes_validate(version, manifest) == []


def test_the_repair_commands_work_with_the_diagnostic_pods_environment(tmp_path):
    # What `kubectl exec <pod> -- moscow-time count` and `set-count --force` do in a pod in
    # diagnostic mode: the rendered env (DATA_DIR, CONFIG_FILE, ...) and no arguments of their own.
    if not BIN.exists():
        pytest.fail(f"{BIN} is missing: build it (cargo build) or set MOSCOW_TIME_BIN")
    docs = helm_template("default", "--set", "diagnosticMode.enabled=true")
    port = free_port()
    env, argv, facts = pod_environment(docs, tmp_path, port)
    assert argv[1:] == ["idle"]
    visits = tmp_path / "data" / "visits"
    visits.write_bytes(b"12abc\n")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN), *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=30)

    log_path = tmp_path / "idle.log"
    log = open(log_path, "wb")
    idle = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)

    def waiting() -> bool:
        assert idle.poll() is None, f"idle exited {idle.returncode}: {log_path.read_text()}"
        return log_contains(log_path, "idle: waiting for SIGTERM or SIGINT")
    try:
        wait_until(waiting, 30, lambda: "idle to wait for a signal; its log: " + log_path.read_text())
        with pytest.raises(OSError):
            get(port, "/healthz", timeout=1)  # nothing serves in diagnostic mode
        counted = run("count")
        assert counted.returncode != 0 and "corrupt" in counted.stderr + counted.stdout
        assert visits.read_bytes() == b"12abc\n", "count changed the corrupt file"
        repaired = run("set-count", "--force", "41")
        assert repaired.returncode == 0, repaired.stderr
        assert "41" in repaired.stdout
        assert run("count").stdout == "41\n"
        kept = list((tmp_path / "data").glob("visits.corrupt-*"))
        assert len(kept) == 1 and kept[0].read_bytes() == b"12abc\n"
        assert idle.poll() is None, f"idle exited {idle.returncode} by itself: {log_path.read_text()}"
    finally:
        rc = stop_process(idle, facts["shutdown"] + 5)
        log.close()
    assert rc == 0, f"idle exited {rc} on SIGTERM (None: killed at the timeout)"


def test_the_chart_lints_in_diagnostic_mode():
    subprocess.run([HELM, "lint", "--strict", str(CHART), "--set", "diagnosticMode.enabled=true"],
                   check=True, capture_output=True, text=True, timeout=120)


def install_notes(*args: str) -> str:
    out = subprocess.run([HELM, "install", RELEASE, str(CHART), "--dry-run=client", "--namespace",
                          NAMESPACE, *args], check=True, capture_output=True, text=True, timeout=120).stdout
    return out.split("NOTES:", 1)[1]


def test_diagnostic_mode_notes_say_how_to_repair_and_how_to_leave():
    notes = install_notes("--set", "diagnosticMode.enabled=true")
    assert "DIAGNOSTIC MODE" in notes
    assert f"exec {RELEASE}-N -- moscow-time count" in notes
    assert f"exec {RELEASE}-N -- moscow-time set-count --force " in notes
    assert "--set diagnosticMode.enabled=false" in notes and "helm upgrade" in notes
    diag = ("--set", "diagnosticMode.enabled=true")
    on_delete = install_notes("-f", str(CHART / "ci" / "ondelete-values.yaml"), *diag)
    assert f"delete pod {RELEASE}-0" in on_delete, "with OnDelete the notes must say to delete the pods"
    canary = install_notes(*diag, "--set", "updateStrategy.rollingUpdate.partition=2")
    assert "only pods with an ordinal >= 2 run in diagnostic mode" in canary
    normal = install_notes()
    assert "DIAGNOSTIC MODE" not in normal and "diagnosticMode.enabled=true" in normal


# ---------------------------------------------------------------- restoring from a snapshot

def test_data_source_restores_every_new_claim_and_is_off_by_default():
    default = the_statefulset(render("chart:default"))
    assert "dataSource" not in default["spec"]["volumeClaimTemplates"][0]["spec"]
    restored = the_statefulset(render("chart:restore"))
    assert restored["spec"]["volumeClaimTemplates"][0]["spec"]["dataSource"] == {
        "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
        "name": "moscow-time-visits-20261126"}
    assert restored["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 2


def test_a_data_source_without_kind_and_name_is_refused():
    result = subprocess.run([HELM, "template", RELEASE, str(CHART), "--set",
                             "persistence.dataSource.name=snap"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "missing property 'kind'" in result.stderr


# ---------------------------------------------------------------- recording

def record_now() -> int:
    """Write immutable-fields.json; refuses to hide a change while the major version is unchanged."""
    version = chart_version()
    current = {s: immutable_fields(the_statefulset(render(f"chart:{s}"))) for s in SCENARIOS}
    if RECORD.exists():
        old = load_record()
        blocking = [p for s in SCENARIOS if s in old["scenarios"]
                    for p in problems(s, the_statefulset(render(f"chart:{s}")), old, version)]
        if blocking:
            print("\n".join(blocking), file=sys.stderr)
            print("not recorded: raise Chart.yaml's major version first", file=sys.stderr)
            return 1
    RECORD.write_text(json.dumps({"chart_major": major(version), "chart_version": version,
                                  "release": RELEASE, "scenarios": current}, indent=2) + "\n")
    print(f"recorded {len(current)} scenarios at chart {version} into {RECORD}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit(__doc__)
    sys.exit(record_now())
