"""Update strategies on the real StatefulSet controller: a `partition` canary updates only the
pods at or above it, `OnDelete` updates a pod only when it is deleted, and each pod keeps the
settings of its own revision; `helm test` passes; Kubernetes refuses a change to an immutable
field, and the chart README's way around it (orphan the StatefulSet, upgrade) keeps every pod's
count. And the must-fail case: an image that was never loaded leaves its pod in ErrImagePull or
ImagePullBackOff, and the wait reports it in those words.
"""
from __future__ import annotations

import json
import re

import pytest

from pyhelpers.live import http_get
from pyhelpers.tools import CHART

PODS = ["moscow-time-0", "moscow-time-1", "moscow-time-2"]


def revisions(cluster, namespace) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["labels"]["controller-revision-hash"]
            for p in cluster.pods(namespace)}


def upgrade(cluster, namespace, *sets: str, wait=True):
    args = ["upgrade", "moscow-time", str(CHART), "--namespace", namespace, "--reuse-values"]
    for s in sets:
        args += ["--set", s]
    cluster.helm(*args)
    if wait:
        cluster.wait_rollout(namespace)


def pod_setting(cluster, namespace, pod, key) -> object:
    """A setting as the pod's own process sees its config file."""
    text = cluster.kubectl("exec", pod, "--", "cat", "/etc/moscow-time/config.json", namespace=namespace)
    return json.loads(text).get(key)


def test_a_partition_canary_updates_only_the_pods_at_or_above_it(cluster, releases):
    ns = releases.install("canary")
    old = revisions(cluster, ns)
    upgrade(cluster, ns, "updateStrategy.rollingUpdate.partition=2", "config.peer_timeout_ms=400")
    now = revisions(cluster, ns)
    assert now["moscow-time-2"] != old["moscow-time-2"]
    assert [now[p] for p in PODS[:2]] == [old[p] for p in PODS[:2]], (old, now)
    # Each pod reads the settings of its own revision, also after a restart of an old pod.
    cluster.kubectl("delete", "pod", "moscow-time-0", namespace=ns, timeout=120)
    cluster.wait_ready(ns, 3)
    assert revisions(cluster, ns)["moscow-time-0"] == old["moscow-time-0"]
    assert pod_setting(cluster, ns, "moscow-time-0", "peer_timeout_ms") != 400
    assert pod_setting(cluster, ns, "moscow-time-2", "peer_timeout_ms") == 400
    upgrade(cluster, ns, "updateStrategy.rollingUpdate.partition=0")
    assert len(set(revisions(cluster, ns).values())) == 1
    assert pod_setting(cluster, ns, "moscow-time-0", "peer_timeout_ms") == 400


def test_on_delete_updates_a_pod_only_when_it_is_deleted(cluster, releases):
    ns = releases.install("ondelete", "updateStrategy.type=OnDelete")
    old = revisions(cluster, ns)
    upgrade(cluster, ns, "config.peer_timeout_ms=450", wait=False)
    target = cluster.kubectl("get", "sts", "moscow-time", "-o", "jsonpath={.status.updateRevision}", namespace=ns)
    assert target not in old.values()
    assert revisions(cluster, ns) == old, "OnDelete replaced a pod that was not deleted"
    cluster.kubectl("delete", "pod", "moscow-time-1", namespace=ns, timeout=120)
    cluster.wait_ready(ns, 3)
    now = revisions(cluster, ns)
    assert now["moscow-time-1"] == target
    assert now["moscow-time-0"] == old["moscow-time-0"] and now["moscow-time-2"] == old["moscow-time-2"]
    assert pod_setting(cluster, ns, "moscow-time-1", "peer_timeout_ms") == 450
    assert pod_setting(cluster, ns, "moscow-time-2", "peer_timeout_ms") != 450


def test_helm_test_passes_and_an_immutable_change_is_refused_with_counts_kept(cluster, releases):
    ns = releases.install("gate", "service.type=NodePort")
    test = cluster.helm("test", "moscow-time", "--namespace", ns, "--logs", timeout=300)
    assert "Phase:          Succeeded" in test.out and "visits:" in test.out, test.out
    port = cluster.kubectl("get", "service", "moscow-time", "-o", "jsonpath={.spec.ports[0].nodePort}", namespace=ns)
    cluster.wait_routed(ns, 3)
    for _ in range(12):
        assert http_get(f"http://{cluster.node_ip()}:{port}/").status == 200
    before = {p: cluster.exec_cat_visits(ns, p) for p in PODS}
    refused = cluster.helm("upgrade", "moscow-time", str(CHART), "--namespace", ns, "--reuse-values",
                           "--set", "podManagementPolicy=OrderedReady", check=False)
    assert refused.code != 0 and "Forbidden" in refused.err, refused.err
    assert cluster.kubectl("get", "sts", "moscow-time", "-o", "jsonpath={.spec.podManagementPolicy}",
                           namespace=ns) == "Parallel"
    # The chart README's way around it: orphan the StatefulSet, upgrade; the pods are adopted.
    cluster.kubectl("delete", "statefulset", "moscow-time", "--cascade=orphan", namespace=ns)
    upgrade(cluster, ns, "podManagementPolicy=OrderedReady")
    assert cluster.kubectl("get", "sts", "moscow-time", "-o", "jsonpath={.spec.podManagementPolicy}",
                           namespace=ns) == "OrderedReady"
    cluster.wait_ready(ns, 3)
    assert {p: cluster.exec_cat_visits(ns, p) for p in PODS} == before


def test_must_fail_an_image_that_was_never_loaded_is_reported_as_such(cluster, releases):
    ns = releases.install("noimage", "image.tag=never-loaded", replicas=1, wait=False)
    with pytest.raises(AssertionError) as failure:
        cluster.wait_ready(ns, 1, timeout=180)
    message = str(failure.value)
    assert re.search(r"moscow-time-0: (ErrImagePull|ImagePullBackOff)", message), message
    assert "never-loaded" in message, message
