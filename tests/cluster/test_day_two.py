"""Day two on the real cluster: the service's process stopped through the container runtime is
restarted by the kubelet with its count intact; scaling 5 -> 3 -> 5 keeps the counts of pods 3
and 4; an uninstall keeps every claim and a reinstall counts on; a corrupt count is repaired with
the runbook's own commands (docs/operations.md: diagnostic mode, `set-count`).
"""
from __future__ import annotations

from pathlib import Path

from conftest import STANDINS
from pyhelpers import docs, kube
from pyhelpers.live import http_get, wait_until
from pyhelpers.tools import CHART, ROOT

OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def visit(cluster, namespace, pod, times):
    """`times` visits to one pod, on its own address (not through the Service)."""
    ip = cluster.kubectl("get", "pod", pod, "-o", "jsonpath={.status.podIP}", namespace=namespace)
    for _ in range(times):
        assert http_get(f"http://{ip}:8000/").status == 200


def counts(cluster, namespace, pods) -> dict[str, int]:
    return {pod: cluster.exec_cat_visits(namespace, pod) for pod in pods}


def volume_folder(cluster, namespace, claim) -> Path:
    pv = cluster.kubectl("get", "pvc", claim, "-o", "jsonpath={.spec.volumeName}", namespace=namespace)
    return Path(cluster.kubectl("get", "pv", pv, "-o", "jsonpath={.spec.hostPath.path}"))


def test_the_kubelet_restarts_a_stopped_service_and_its_count_is_intact(cluster, releases):
    ns = releases.install("restart")
    visit(cluster, ns, "moscow-time-1", 7)
    before = counts(cluster, ns, ["moscow-time-1"])
    status = cluster.kubectl_json("get", "pod", "moscow-time-1", namespace=ns)["status"]["containerStatuses"][0]
    container = status["containerID"].split("://", 1)[1]
    # The runtime's own stop, as an OOM kill or a crash would end the process: not a broad kill.
    cluster.crictl("stop", container)

    def restarted():
        pod = cluster.kubectl_json("get", "pod", "moscow-time-1", namespace=ns)
        return pod["status"]["containerStatuses"][0]["restartCount"] > status["restartCount"] and kube.is_ready(pod)

    wait_until(restarted, 180, "the kubelet to restart moscow-time-1's container and the pod to be Ready", 0.5)
    assert counts(cluster, ns, ["moscow-time-1"]) == before
    visit(cluster, ns, "moscow-time-1", 1)
    assert counts(cluster, ns, ["moscow-time-1"])["moscow-time-1"] == before["moscow-time-1"] + 1


def test_scaling_5_3_5_keeps_the_counts_of_pods_3_and_4(cluster, releases):
    ns = releases.install("scale", replicas=5)
    visit(cluster, ns, "moscow-time-3", 3)
    visit(cluster, ns, "moscow-time-4", 5)
    before = counts(cluster, ns, ["moscow-time-3", "moscow-time-4"])
    assert before == {"moscow-time-3": 3, "moscow-time-4": 5}
    cluster.helm("upgrade", "moscow-time", str(CHART), "--namespace", ns, "--reuse-values", "--set", "replicaCount=3")
    cluster.kubectl("wait", "--for=delete", "pod/moscow-time-3", "pod/moscow-time-4", "--timeout=120s",
                    namespace=ns, timeout=180)
    claims = cluster.kubectl("get", "pvc", "-o", "jsonpath={.items[*].metadata.name}", namespace=ns).split()
    assert sorted(claims) == [f"data-moscow-time-{i}" for i in range(5)]
    cluster.helm("upgrade", "moscow-time", str(CHART), "--namespace", ns, "--reuse-values", "--set", "replicaCount=5")
    cluster.wait_ready(ns, 5)
    assert counts(cluster, ns, ["moscow-time-3", "moscow-time-4"]) == before


def test_an_uninstall_keeps_every_claim_and_a_reinstall_counts_on(cluster, releases):
    ns = releases.install("reinstall")
    pods = ["moscow-time-0", "moscow-time-1", "moscow-time-2"]
    for n, pod in enumerate(pods, start=2):
        visit(cluster, ns, pod, n)
    before = counts(cluster, ns, pods)
    cluster.helm("uninstall", "moscow-time", "--namespace", ns, "--wait")
    cluster.kubectl("wait", "--for=delete", *[f"pod/{p}" for p in pods], "--timeout=120s", namespace=ns, timeout=180)
    claims = cluster.kubectl_json("get", "pvc", namespace=ns)["items"]
    assert sorted((c["metadata"]["name"], c["status"]["phase"]) for c in claims) == \
        [(f"data-{p}", "Bound") for p in pods]
    cluster.helm("install", "moscow-time", str(CHART), "--namespace", ns)
    cluster.wait_ready(ns, 3)
    assert counts(cluster, ns, pods) == before


def test_a_corrupt_count_is_repaired_with_the_runbooks_own_commands(cluster, images, tmp_path):
    """docs/operations.md's repair, run as written in the namespace it names: the pod whose
    `visits` holds "12abc" crash-loops with the reason, diagnostic mode lets `set-count` fix it,
    and the pod serves again from 1187 with the corrupt file kept beside it."""
    ns = "moscow-time"
    blocks = docs.blocks_in(OPERATIONS, "docs/operations.md", "## Repair a corrupt visits file")
    steps = [b for b in blocks if not any("patch statefulset" in line for line in b.lines)]  # the Helm path
    try:
        cluster.helm("install", "moscow-time", str(CHART), "--namespace", ns, "--create-namespace")
        cluster.wait_ready(ns, 3)
        folder = volume_folder(cluster, ns, "data-moscow-time-1")
        (folder / "visits").write_text("12abc\n")
        cluster.kubectl("delete", "pod", "moscow-time-1", namespace=ns, timeout=120)

        def crash_looping():
            pod = cluster.kubectl_json("get", "pod", "moscow-time-1", namespace=ns)
            statuses = pod["status"].get("containerStatuses", [])
            return statuses and statuses[0]["restartCount"] >= 1 and not kube.is_ready(pod)

        wait_until(crash_looping, 180, "moscow-time-1 to stop on its corrupt count and be restarted", 0.5)
        out = kube.must_pass(kube.run_docs(cluster, steps, tmp_path, STANDINS))
        logs = out[f"{steps[0].path}:{steps[0].line}"]
        assert "is corrupt" in logs and "12abc" in logs and "set-count --force" in logs, logs
        repaired = out[f"{steps[2].path}:{steps[2].line}"]
        assert "visits: corrupt -> 1187" in repaired, repaired
        assert out[f"{steps[3].path}:{steps[3].line}"].strip().splitlines()[-1] == "1187"
        assert [p.name for p in folder.glob("visits.corrupt-*")], "the corrupt file was not kept"
        cluster.wait_ready(ns, 3)
    finally:
        cluster.helm("uninstall", "moscow-time", "--namespace", ns, "--wait", check=False)
        cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--timeout=180s", timeout=240)
