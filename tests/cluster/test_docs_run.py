"""The docs' cluster steps, run as written on the real cluster: the README's quick start, its
path without Helm, and docs/walkthrough.md (the StatefulSet lab).

The blocks of each page run in order in one bash, as a reader pasting them into one terminal
would; `minikube` and `kind` are the stand-ins in standins/ (loading an image becomes
`scripts/cluster load`, `minikube ip` prints the node's address). What each block printed is
then checked against what the page says it prints. A planted error in a block (a wrong pod name,
a missing namespace) must fail the run and name that block.
"""
from __future__ import annotations

import json
import os
import re

import pytest

from conftest import README, STANDINS
from pyhelpers import docs, kube
from pyhelpers.live import http_get, wait_until
from pyhelpers.tools import ROOT

WALKTHROUGH = (ROOT / "docs" / "walkthrough.md").read_text()
QUICK_START = ("## Put it on a cluster", "### Without Helm: plain manifests")
WITHOUT_HELM = ("### Without Helm: plain manifests", "## What you see, and why")
NAMESPACE = "moscow-time"  # the docs' own namespace


def block_containing(blocks, text: str) -> str:
    return next(f"{b.path}:{b.line}" for b in blocks if any(text in line for line in b.lines))


def pod_counts(output: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(moscow-time-\d+): (\d+)$", output, re.M)}


@pytest.fixture
def clean_namespace(cluster):
    """The docs install into `moscow-time`: it must not exist before, and is gone after."""
    def remove():
        cluster.helm("uninstall", "moscow-time", "--namespace", NAMESPACE, "--wait", check=False)
        cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=180s", timeout=240)
    remove()
    yield
    remove()
    (ROOT / "moscow-time.tar").unlink(missing_ok=True)
    (ROOT / "rendered.yaml").unlink(missing_ok=True)


def run(cluster, blocks, tmp_path, extra_env=None):
    return kube.run_docs(cluster, blocks, tmp_path, STANDINS, extra_env)


must_pass, failed_block = kube.must_pass, kube.failed_block


def test_the_readme_quick_start_runs_as_written(cluster, images, clean_namespace, tmp_path):
    blocks = docs.blocks_in(README, "README.md", *QUICK_START)
    # Steps 1 to 4 (to the visits loop), a look at the cluster, then steps 5 to 7: no block after
    # the loop uses a variable that the blocks before it set.
    loop = next(i for i, b in enumerate(blocks) if any("seq 1 30" in line for line in b.lines))
    out = must_pass(run(cluster, blocks[:loop + 1], tmp_path))

    # Step 4: the visits spread over the pods and add up to the 30 sent.
    visits = out[block_containing(blocks, "seq 1 30")]
    counts = pod_counts(visits)
    assert sorted(counts) == ["moscow-time-0", "moscow-time-1", "moscow-time-2"], visits
    assert sum(counts.values()) == 30, visits
    assert sum(1 for n in counts.values() if n > 0) >= 2, f"kube-proxy sent every visit to one pod: {counts}"
    cluster_view = json.loads(next(line for line in visits.splitlines() if line.startswith("{")))
    assert sorted(p["instance"] for p in cluster_view["pods"]) == sorted(counts), cluster_view
    # As the README says, the JSON view may lag right after the loop, and agrees when asked again.
    url = f"http://{cluster.node_ip()}:30080/visits/cluster"
    wait_until(lambda: json.loads(http_get(url).body)["total"] == 30, 30, "/visits/cluster to count 30",
               interval=1)

    out = must_pass(run(cluster, blocks[loop + 1:], tmp_path))

    # Step 5: the replacement pod counts on from the old number.
    before, after = [line for line in out[block_containing(blocks, "delete pod moscow-time-1")].splitlines()
                     if line.strip().isdigit()]
    assert before == after == str(counts["moscow-time-1"]), (before, after, counts)

    # Step 6: five claims after scaling out, and all five kept after scaling back to three pods.
    scaled = out[block_containing(blocks, "replicaCount=5")]
    claims = set(re.findall(r"^(?:persistentvolumeclaim/)?(data-moscow-time-\d)\s+Bound", scaled, re.M))
    assert claims == {f"data-moscow-time-{i}" for i in range(5)}, scaled
    last_get = scaled.split("data-moscow-time-0", 2)[-1]
    assert len(re.findall(r"^pod/moscow-time-\d\s+\d/\d", scaled, re.M)) == 3, scaled
    assert "data-moscow-time-4" in last_get, scaled

    # Step 7: uninstalling keeps every claim; the namespace is gone; minikube delete was called.
    cleanup = out[block_containing(blocks, "helm uninstall")]
    assert len(re.findall(r"^data-moscow-time-\d\s+Bound", cleanup, re.M)) == 5, cleanup
    assert "minikube delete" in (tmp_path / "standins.log").read_text()
    assert cluster.run([cluster.kubectl_bin, "get", "namespace", NAMESPACE], check=False).code != 0


@pytest.mark.parametrize("plant", ["a wrong pod name", "a missing namespace"])
def test_must_fail_a_planted_error_in_a_readme_block_fails_the_run(cluster, images, clean_namespace, tmp_path, plant):
    blocks = docs.blocks_in(README, "README.md", *QUICK_START)
    install = next(b for b in blocks if any("helm install" in line for line in b.lines))
    must_pass(run(cluster, [install], tmp_path))
    url = docs.Block("README.md", 0, "sh", (f"URL=http://{cluster.node_ip()}:30080",))
    loop = next(b for b in blocks if any("seq 1 30" in line for line in b.lines))
    if plant == "a wrong pod name":
        lines = tuple(line.replace("moscow-time-2", "moscow-time-7") for line in loop.lines)
    else:
        lines = tuple(line.replace("kubectl --namespace moscow-time exec", "kubectl exec") for line in loop.lines)
    assert lines != loop.lines, "the plant changed nothing"
    planted = docs.Block(loop.path, loop.line, loop.language, lines)
    done = run(cluster, [url, planted], tmp_path)
    assert failed_block(done) == f"{loop.path}:{loop.line}", f"{plant} planted, yet:\n{done.stdout}"
    assert 'pods "moscow-time-7" not found' in done.stdout or 'pods "moscow-time-0" not found' in done.stdout, \
        done.stdout


def test_the_path_without_helm_runs_as_written_and_delete_removes_it(cluster, images, clean_namespace, tmp_path):
    blocks = docs.blocks_in(README, "README.md", *WITHOUT_HELM)
    quick = docs.blocks_in(README, "README.md", *QUICK_START)
    url = docs.Block("README.md", 0, "sh", (f"URL=http://{cluster.node_ip()}:30080",))
    loop = next(b for b in quick if any("seq 1 30" in line for line in b.lines))
    out = must_pass(run(cluster, [*blocks, url, loop], tmp_path))
    counts = pod_counts(out[f"{loop.path}:{loop.line}"])
    assert sum(counts.values()) == 30, out
    labels = cluster.kubectl("get", "namespace", NAMESPACE, "-o",
                             "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}")
    assert labels == "restricted"
    cluster.kubectl("delete", "-k", str(ROOT / "k8s"), "--wait=true", "--timeout=180s", timeout=240)
    assert cluster.run([cluster.kubectl_bin, "get", "namespace", NAMESPACE], check=False).code != 0


def test_the_walkthrough_runs_as_written(cluster, images, clean_namespace, tmp_path):
    blocks = docs.blocks_in(WALKTHROUGH, "docs/walkthrough.md", "# The StatefulSet lab, step by step")
    out = must_pass(run(cluster, blocks, tmp_path, {"URL": f"http://{cluster.node_ip()}:30080"}))

    # 1: the render lists the kinds the page names, and the dry run renders a Parallel StatefulSet.
    kinds = out[block_containing(blocks, "grep '^kind:'")]
    assert "kind: StatefulSet" in kinds and "kind: PersistentVolumeClaim" not in kinds, kinds
    dry_run = out[block_containing(blocks, "--dry-run=client")]
    assert "podManagementPolicy: Parallel" in dry_run and "NOTES:" in dry_run, dry_run[-2000:]

    # 3: the 30 visits add up over the three pods' files.
    counts = pod_counts(out[block_containing(blocks, "seq 1 30")])
    assert sum(counts.values()) == 30, counts

    # 5: after the partition=2 upgrade only moscow-time-2 runs the new revision; after the
    # OnDelete upgrade only the deleted pod does.
    canary = out[block_containing(blocks, "partition=2")]
    revisions = dict(re.findall(r"^(moscow-time-\d)\s.*\s(moscow-time-[0-9a-f]+)\s*$", canary, re.M))
    assert len(revisions) == 3 and revisions["moscow-time-2"] != revisions["moscow-time-1"] == \
        revisions["moscow-time-0"], canary
    on_delete = out[block_containing(blocks, "OnDelete")]
    revisions = dict(re.findall(r"^(moscow-time-\d)\s.*\s(moscow-time-[0-9a-f]+)\s*$", on_delete, re.M))
    assert len(revisions) == 3 and revisions["moscow-time-0"] != revisions["moscow-time-1"] == \
        revisions["moscow-time-2"], on_delete
    assert cluster.run([cluster.kubectl_bin, "get", "namespace", NAMESPACE], check=False).code != 0
    assert os.path.exists(ROOT / "rendered.yaml")
