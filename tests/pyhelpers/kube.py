"""The real single-node cluster of scripts/cluster, as the tests in tests/cluster use it.

`Cluster` runs kubectl and helm against it (the cluster's own kubectl, the pinned helm), waits
for pods by their conditions, and when something fails says why in the words Kubernetes uses
(`ErrImagePull`, `CrashLoopBackOff`, ...), with the events, a `describe` of each pod that is not
ready, and the tail of each component's log.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pyhelpers import docs
from pyhelpers.live import wait_until
from pyhelpers.tools import HELM, ROOT

SCRIPT = ROOT / "scripts" / "cluster"
CONTAINERD_SOCKET = "/run/moscow-time-cluster/containerd.sock"  # scripts/cluster's $SOCK
# The reasons a container waits for that mean it will not start by itself.
BAD_WAITING = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
               "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def script(*args: str, timeout: float = 3600, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs scripts/cluster with `args`; `check` fails with its output when it exits non-zero."""
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and done.returncode != 0:
        raise AssertionError(f"scripts/cluster {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def cluster_env() -> dict[str, str]:
    """The environment `eval "$(scripts/cluster env)"` gives: KUBECONFIG and the cluster's bin."""
    env = dict(os.environ)
    for line in script("env").stdout.splitlines():
        name, value = line.removeprefix("export ").split("=", 1)
        env[name] = value.replace("$PATH", os.environ.get("PATH", ""))
    return env


@dataclass
class Run:
    code: int
    out: str
    err: str


class Cluster:
    def __init__(self, env: dict[str, str]):
        self.env = env
        self.kubectl_bin = str(Path(env["PATH"].split(":")[0]) / "kubectl")

    def node_ip(self) -> str:
        return self.kubectl("get", "nodes", "-o", "jsonpath={.items[0].status.addresses[?(@.type=='InternalIP')].address}")

    def run(self, argv: list[str], timeout: float = 600, check: bool = True, input: str | None = None) -> Run:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env, input=input)
        run = Run(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return run

    def kubectl(self, *args: str, namespace: str | None = None, timeout: float = 600, check: bool = True,
                input: str | None = None) -> str:
        ns = ["--namespace", namespace] if namespace else []
        return self.run([self.kubectl_bin, *ns, *args], timeout, check, input).out.strip()

    def kubectl_json(self, *args: str, namespace: str | None = None) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json", namespace=namespace))

    def helm(self, *args: str, timeout: float = 600, check: bool = True) -> Run:
        return self.run([HELM, *args], timeout, check)

    def crictl(self, *args: str) -> str:
        """crictl against the node's containerd (the container runtime's own view and controls)."""
        crictl = str(Path(self.kubectl_bin).parent / "crictl")
        return self.run([crictl, "--runtime-endpoint", f"unix://{CONTAINERD_SOCKET}", *args]).out.strip()

    def exec_cat_visits(self, namespace: str, pod: str) -> int:
        return int(self.kubectl("exec", pod, "--", "cat", "visits", namespace=namespace))

    def pods(self, namespace: str, selector: str = "app.kubernetes.io/name=moscow-time") -> list[dict]:
        return self.kubectl_json("get", "pods", "-l", selector, namespace=namespace)["items"]

    # ---- waiting, and saying why a wait failed ----
    def problems(self, namespace: str, pending: bool = False) -> list[str]:
        """Each pod whose container cannot start, and why, in Kubernetes' words:
        'pod: ImagePullBackOff: ...'; with `pending`, also why a pod is not scheduled yet (which
        can pass by itself: a claim still being bound)."""
        out = []
        for pod in self.kubectl_json("get", "pods", namespace=namespace)["items"]:
            name = pod["metadata"]["name"]
            statuses = pod.get("status", {}).get("containerStatuses", []) + \
                pod.get("status", {}).get("initContainerStatuses", [])
            for status in statuses:
                waiting = status.get("state", {}).get("waiting")
                if waiting and waiting.get("reason") in BAD_WAITING:
                    out.append(f"{name}: {waiting['reason']}: {waiting.get('message', '')[:300]}")
            if pending and pod.get("status", {}).get("phase") == "Pending" and not statuses:
                for cond in pod.get("status", {}).get("conditions", []):
                    if cond.get("status") == "False" and cond.get("reason"):
                        out.append(f"{name}: {cond['reason']}: {cond.get('message', '')[:300]}")
        return out

    def wait_ready(self, namespace: str, count: int, timeout: float = 300,
                   selector: str = "app.kubernetes.io/name=moscow-time") -> list[dict]:
        """Waits until `count` pods of the selector are Ready; fails at once, naming the reason,
        when a pod is stuck (an image that is not there, a crash loop)."""
        seen: list = []

        def ready():
            stuck = self.problems(namespace)
            if stuck:
                raise AssertionError(f"pods in {namespace} cannot start:\n  " + "\n  ".join(stuck))
            pods = self.pods(namespace, selector)
            seen[:] = [(p["metadata"]["name"], p["status"].get("phase")) for p in pods] + \
                self.problems(namespace, pending=True)
            ok = [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")]
            return pods if len(ok) == count and len(pods) == count else None

        return wait_until(ready, timeout, lambda: f"{count} ready pods in {namespace} (saw {seen})", interval=0.5)

    def wait_routed(self, namespace: str, count: int, service: str = "moscow-time", timeout: float = 120) -> None:
        """Waits until kube-proxy's rules send the Service's connections to `count` pods: pods are
        Ready a moment before kube-proxy has programmed them, and visits sent in between all go
        to the pods it already knows."""
        comment = f'--comment "{namespace}/{service}:'

        def routed():
            rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
            return sum(1 for line in rules.splitlines() if comment in line and " -> " in line) >= count

        wait_until(routed, timeout, f"kube-proxy to route {namespace}/{service} to {count} pods", interval=0.2)

    def wait_rollout(self, namespace: str, name: str = "moscow-time", timeout: int = 300) -> None:
        self.kubectl("rollout", "status", f"statefulset/{name}", f"--timeout={timeout}s", namespace=namespace,
                     timeout=timeout + 30)

    def diagnostics(self, namespaces: list[str] | None = None) -> str:
        """What a failed test prints: events, a describe of every pod that is not ready, and the
        tail of each component's log."""
        parts = ["---- kubectl get events -A", self.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp",
                                                          check=False, timeout=60)]
        for ns in namespaces or []:
            for pod in self.kubectl_json("get", "pods", namespace=ns)["items"] if self._exists(ns) else []:
                if not is_ready(pod):
                    name = pod["metadata"]["name"]
                    parts += [f"---- kubectl describe pod {name} -n {ns}",
                              self.kubectl("describe", "pod", name, namespace=ns, check=False, timeout=60)]
        parts += ["---- scripts/cluster logs", script("logs", check=False, env={"LINES_PER_LOG": "25"}).stdout]
        return "\n".join(parts)

    def _exists(self, namespace: str) -> bool:
        return self.run([self.kubectl_bin, "get", "namespace", namespace], check=False, timeout=60).code == 0


# The harness's own wait after a block that ends with a rollout: a StatefulSet's pods are Ready a
# moment before kube-proxy routes the Service to all of them, and a reader's next step (sending
# visits through the NodePort) would see fewer pods. It waits for kube-proxy's rules for the
# Service `moscow-time` to list every replica, the event itself, not for time.
ROUTED = r"""
__routed() {
  local want deadline=$((SECONDS + 120))
  want="$(kubectl --namespace moscow-time get statefulset moscow-time -o jsonpath='{.spec.replicas}')"
  until [ "$(iptables-save -t nat | grep -cE -- '--comment "moscow-time/moscow-time:[a-z]* -> ')" -ge "$want" ]; do
    [ $SECONDS -lt $deadline ] || { echo "kube-proxy never routed moscow-time to $want pods" >&2; return 1; }
    sleep 0.2
  done
}
"""


def after_rollout(block) -> list[str]:
    return ["__routed"] if any("rollout status" in line for line in block.lines) else []


def run_docs(cluster, blocks, tmp_path, standins, extra_env=None, timeout=2400) -> subprocess.CompletedProcess:
    """Runs docs blocks in one bash on the cluster (see docs.script_of), with `standins` (minikube,
    kind) first on the PATH and the pinned helm last; stderr goes into stdout, in order."""
    env = dict(cluster.env)
    env["PATH"] = f"{standins}:{env['PATH']}:{ROOT / '.tools' / 'bin'}"
    env["STANDIN_RECORD"] = str(tmp_path / "standins.log")
    env.update(extra_env or {})
    script = docs.script_of(blocks, "exec 2>&1  # errors in order, within their block's output\n" + ROUTED,
                            after_rollout)
    return subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


# What a reader sees as a failed command even where bash goes on: an error inside `$(...)` in an
# argument (`echo "$pod: $(kubectl exec ...)"`) never stops a script, but prints one of these.
ERROR_LINE = re.compile(r"^(Error from server|error: |Error: )", re.M)


def failed_block(done) -> str | None:
    """The block where the run failed: the one it stopped in, or the first that printed an error."""
    if done.returncode != 0:
        return docs.last_block(done.stdout)
    return next((where for where, text in docs.outputs(done.stdout).items() if ERROR_LINE.search(text)), None)


def must_pass(done):
    where = failed_block(done)
    assert where is None, f"the docs' block at {where} failed (exit {done.returncode}):\n{done.stdout[-4000:]}"
    return docs.outputs(done.stdout)


def is_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def condition_time(pod: dict, kind: str) -> str | None:
    for cond in pod.get("status", {}).get("conditions", []):
        if cond["type"] == kind and cond["status"] == "True":
            return cond["lastTransitionTime"]
    return None


def unique_namespace(prefix: str) -> str:
    return f"{prefix}-{os.getpid() % 10000}-{int(time.time() * 1000) % 100000}"
