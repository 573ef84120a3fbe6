"""The StatefulSet on the real cluster: pods started in parallel, one claim each, visits through
the NodePort (real kube-proxy) spread over the pods and adding up, probes that never count, the
page's per-pod table (peers found through the headless Service's DNS) equal to each pod's file,
a deleted pod back with its name, claim and count, and the pod's security as the chart says.
"""
from __future__ import annotations

import json
import os
import re
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from pyhelpers import kube
from pyhelpers.live import http_get, wait_until

PODS = ["moscow-time-0", "moscow-time-1", "moscow-time-2"]


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def lab(cluster, images):
    """One install for the module, on a NodePort Kubernetes assigns."""
    from conftest import Releases
    releases = Releases(cluster)
    namespace = releases.install("lab", "service.type=NodePort")
    port = cluster.kubectl("get", "service", "moscow-time", "-o", "jsonpath={.spec.ports[0].nodePort}",
                           namespace=namespace)
    cluster.wait_routed(namespace, 3)
    yield namespace, f"http://{cluster.node_ip()}:{port}"
    releases.remove_all()


def counts(cluster, namespace) -> dict[str, int]:
    return {pod: cluster.exec_cat_visits(namespace, pod) for pod in PODS}


def test_the_pods_start_in_parallel_each_with_a_bound_claim(cluster, lab):
    namespace, _ = lab
    pods = cluster.pods(namespace)
    created = sorted(when(p["metadata"]["creationTimestamp"]) for p in pods)
    first_ready = min(when(kube.condition_time(p, "Ready")) for p in pods)
    assert (created[-1] - created[0]).total_seconds() <= 5, f"created one after another: {created}"
    assert created[-1] <= first_ready, "a pod was created only after another was Ready (OrderedReady?)"
    claims = cluster.kubectl_json("get", "pvc", namespace=namespace)["items"]
    assert sorted((c["metadata"]["name"], c["status"]["phase"]) for c in claims) == \
        [(f"data-{p}", "Bound") for p in PODS]
    listing = cluster.kubectl("get", "po,sts,svc,pvc", namespace=namespace)
    for thing in ["pod/moscow-time-0", "statefulset.apps/moscow-time", "service/moscow-time-headless",
                  "persistentvolumeclaim/data-moscow-time-2"]:
        assert thing in listing, listing
    described = cluster.kubectl("describe", "sts", "moscow-time", namespace=namespace)
    for pod in PODS:  # the events the walkthrough points at: one claim and one pod per ordinal
        assert f"Create Claim data-{pod} Pod {pod}" in described and f"Create Pod {pod}" in described, described
    assert cluster.kubectl("get", "sts", "moscow-time", "-o", "jsonpath={.spec.podManagementPolicy}",
                           namespace=namespace) == "Parallel"


def test_visits_through_the_node_port_spread_over_the_pods_and_add_up(cluster, lab):
    namespace, url = lab
    before = counts(cluster, namespace)
    served = {}
    for _ in range(60):
        with urllib.request.urlopen(url + "/", timeout=10) as answer:  # a new connection each time
            assert answer.status == 200
            pod = re.search(r'id="pod">([^<]+)<', answer.read().decode()).group(1)
            served[pod] = served.get(pod, 0) + 1
    after = counts(cluster, namespace)
    assert sum(after.values()) - sum(before.values()) == 60, (before, after)
    assert {pod: after[pod] - before[pod] for pod in PODS if after[pod] != before[pod]} == served
    assert len(served) >= 2, f"kube-proxy sent all 60 connections to one pod: {served}"


def probe_requests(cluster, namespace, pod) -> int:
    """How many probe requests a pod has answered, from its own metrics (read on the pod's own
    address, on the node: nothing goes through the Service)."""
    metrics = http_get(f"http://{pod_ip(cluster, namespace, pod)}:8000/metrics").body
    return sum(int(float(v)) for v in re.findall(
        r'^moscow_time_http_requests_total\{[^}]*route="/(?:healthz|readyz)"[^}]*\} (\S+)$', metrics, re.M))


def pod_ip(cluster, namespace, pod) -> str:
    return cluster.kubectl("get", "pod", pod, "-o", "jsonpath={.status.podIP}", namespace=namespace)


def test_probes_never_count(cluster, lab):
    namespace, _ = lab
    before = counts(cluster, namespace)
    start = {pod: probe_requests(cluster, namespace, pod) for pod in PODS}
    # The kubelet probes each pod every few seconds: wait until each has answered six more.
    wait_until(lambda: all(probe_requests(cluster, namespace, p) >= start[p] + 6 for p in PODS), 180,
               "six more probe requests on every pod")
    assert counts(cluster, namespace) == before


def test_the_pages_table_found_through_dns_equals_each_pods_file(cluster, lab):
    """The page answers at once with the peers' counts it last fetched and refreshes them behind
    (at most once a second), so a reload shows them current: the table of some page view equals
    each pod's file read right after it."""
    namespace, url = lab
    seen = []

    def table_matches_files():
        page = http_get(url + "/").body
        rows = dict(re.findall(r'<span class="name">(moscow-time-\d)</span>.*?<td class="count">([\d,]+)</td>', page))
        table = {pod: int(n.replace(",", "")) for pod, n in rows.items()}
        files = counts(cluster, namespace)
        seen[:] = [table, files]
        return sorted(table) == PODS and table == files

    wait_until(table_matches_files, 60, lambda: f"a page whose table equals the files (last: {seen})", interval=1.5)
    # The peers are the addresses the headless Service's name resolved to in cluster DNS: the pods'.
    view = json.loads(http_get(url + "/visits/cluster").body)
    assert sorted(row["peer"] for row in view["pods"]) == \
        sorted(f"http://{pod_ip(cluster, namespace, pod)}:8000" for pod in PODS), view


def test_a_deleted_pod_comes_back_with_its_name_claim_and_count(cluster, lab):
    namespace, url = lab
    for _ in range(5):
        http_get(url + "/")
    pod = "moscow-time-1"
    count = cluster.exec_cat_visits(namespace, pod)
    claim_uid = cluster.kubectl("get", "pvc", f"data-{pod}", "-o", "jsonpath={.metadata.uid}", namespace=namespace)
    old_uid = cluster.kubectl("get", "pod", pod, "-o", "jsonpath={.metadata.uid}", namespace=namespace)
    cluster.kubectl("delete", "pod", pod, namespace=namespace, timeout=120)
    cluster.wait_ready(namespace, 3)
    cluster.wait_routed(namespace, 3)
    new = cluster.kubectl_json("get", "pod", pod, namespace=namespace)
    assert new["metadata"]["uid"] != old_uid
    claims = [v["persistentVolumeClaim"]["claimName"] for v in new["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [f"data-{pod}"]
    assert cluster.kubectl("get", "pvc", f"data-{pod}", "-o", "jsonpath={.metadata.uid}", namespace=namespace) == claim_uid
    assert cluster.exec_cat_visits(namespace, pod) == count


def test_the_service_runs_as_non_root_on_a_read_only_root(cluster, lab):
    namespace, _ = lab
    status = cluster.kubectl("exec", "moscow-time-0", "--", "cat", "/proc/1/status", namespace=namespace)
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    assert set(uids) == {"65532"}, status
    assert re.search(r"^CapEff:\s+0+$", status, re.M), status
    mounts = cluster.kubectl("exec", "moscow-time-0", "--", "cat", "/proc/1/mounts", namespace=namespace)
    root = next(line.split() for line in mounts.splitlines() if line.split()[1] == "/")
    assert "ro" in root[3].split(","), root
    data = next(line.split() for line in mounts.splitlines() if line.split()[1] == "/data")
    assert "rw" in data[3].split(","), data


def test_the_volumes_are_world_writable_folders_that_fsgroup_does_not_touch(cluster, lab):
    """What the docs say of minikube's and kind's provisioners, seen on this cluster's: the kubelet
    applies no fsGroup to a hostPath volume; the service can write because the folder is 0777."""
    namespace, _ = lab
    pv = cluster.kubectl("get", "pvc", "data-moscow-time-0", "-o", "jsonpath={.spec.volumeName}", namespace=namespace)
    folder = Path(cluster.kubectl("get", "pv", pv, "-o", "jsonpath={.spec.hostPath.path}"))
    info = folder.stat()
    assert oct(info.st_mode & 0o7777) == "0o777", oct(info.st_mode)
    assert (info.st_uid, info.st_gid) == (0, 0), "the folder's owner changed: was fsGroup applied?"
    visits = (folder / "visits").stat()
    assert (visits.st_uid, visits.st_gid) == (65532, 65532)
    assert os.path.samefile(folder.parent.parent, "/tmp/hostpath-provisioner")
