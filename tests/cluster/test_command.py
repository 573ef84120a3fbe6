"""scripts/cluster itself: bad input says what is wrong and what to do, and exits non-zero; a
failed `up` leaves nothing running; `down` removes every process, mount, interface and iptables
chain it added and keeps the build cache; `up` works again after `down`.

This module runs first in the stage: it takes the cluster down and brings it up again.
"""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from pyhelpers import kube

STATE = Path("/var/lib/moscow-time-cluster")
CACHE = Path("/var/cache/moscow-time-cluster")
COMPONENT_BINARIES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
                      "kube-proxy", "containerd", "coredns", "provisioner", "containerd-shim-runc-v2"]


def ours(pid: str) -> bool:
    """Whether a process runs one of the cluster's binaries (a machine may have its own containerd)."""
    try:
        return str(Path(f"/proc/{pid}/exe").resolve()).startswith(str(CACHE))
    except OSError:
        return False


def leftovers() -> list[str]:
    """Whatever of a cluster is still on the machine."""
    found = []
    for binary in COMPONENT_BINARIES:
        pids = subprocess.run(["pgrep", "-x", binary[:15]], capture_output=True, text=True).stdout.split()
        found += [f"process {binary} ({pid})" for pid in pids if ours(pid)]
    mounts = Path("/proc/mounts").read_text()
    found += [f"mount {line.split()[1]}" for line in mounts.splitlines()
              if line.split()[1].startswith(("/var/lib/moscow-time-cluster", "/run/moscow-time-cluster",
                                             "/tmp/hostpath-provisioner"))]
    if subprocess.run(["ip", "link", "show", "mtcluster0"], capture_output=True).returncode == 0:
        found.append("interface mtcluster0")
    rules = "".join(subprocess.run(["iptables-save", "-t", t], capture_output=True, text=True).stdout
                    for t in ("filter", "nat", "mangle"))
    found += [f"iptables chain {line.split()[0][1:]}" for line in rules.splitlines()
              if line.startswith((":KUBE-", ":CNI-", ":MOSCOW-TIME-CLUSTER"))]
    found += [f"folder {p}" for p in (STATE, Path("/run/moscow-time-cluster"), Path("/tmp/hostpath-provisioner"))
              if p.exists()]
    found += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob("*/kubepods")]
    return found


def test_bad_input_says_what_is_wrong_and_exits_non_zero(tmp_path):
    unknown = kube.script("start", check=False)
    assert unknown.returncode != 0 and "unknown command 'start'" in unknown.stderr, unknown.stderr
    assert "up, env, load" in unknown.stderr
    missing = kube.script("load", str(tmp_path / "nothing.tar"), check=False)
    assert missing.returncode != 0 and "no such archive" in missing.stderr and "podman save" in missing.stderr
    none = kube.script("load", check=False)
    assert none.returncode != 0 and "load needs an image archive" in none.stderr
    bad_log = kube.script("logs", "kubelett", check=False)
    assert bad_log.returncode != 0 and "no log named 'kubelett'" in bad_log.stderr


@pytest.fixture
def brought_back_up():
    """Whatever the test does to the cluster, it runs again afterwards for the other tests."""
    yield
    kube.script("up", timeout=900)


def test_down_removes_everything_and_a_failed_up_leaves_nothing_running(cluster, brought_back_up):
    cache = kube.script("env").stdout
    kube.script("down", timeout=300)
    assert leftovers() == []
    assert "cluster is not (fully) running" in kube.script("status", check=False).stdout
    # A port the API server needs is taken: up says which and what to do, and starts nothing.
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("0.0.0.0", 6443))
        blocker.listen()
        failed = kube.script("up", check=False, timeout=600)
    assert failed.returncode != 0 and "port 6443 is in use" in failed.stderr, failed.stderr
    assert "what to do:" in failed.stderr
    assert leftovers() == []
    # An address that is not this machine's is refused before anything starts.
    wrong = kube.script("up", check=False, env={"CLUSTER_NODE_IP": "203.0.113.7"}, timeout=600)
    assert wrong.returncode != 0 and "not an address of this machine" in wrong.stderr, wrong.stderr
    assert leftovers() == []
    # And up works again, from the build cache.
    again = kube.script("up", timeout=900)
    assert "building" not in again.stdout, again.stdout
    assert "the cluster is up" in again.stdout
    already = kube.script("up")
    assert "already running" in already.stdout
    assert kube.script("env").stdout == cache
