"""The rollout rehearsal with containers: the parts tests/container/test_rollout.py runs, in the
container stage, with the image scripts/test-container built.

Three containers `moscow-time-0..2`, each with its own named volume at /data, started as the
rendered chart's pod would be (its env and config.json, read-only root file system, all
capabilities dropped, uid/gid 65532, /tmp as a small tmpfs like the chart's emptyDir) on one
podman network, where a network alias stands in for the headless Service of `PEERS_DNS`.
HAProxy on the host (like kube-proxy, see rehearsal.py) sends wrk's load to their ports,
published on 127.0.0.1. Under that load the three are rolled onto a second tag of the image,
highest ordinal first, as the StatefulSet controller does: `podman stop -t <grace period>`
(SIGTERM, SIGKILL at the grace period, like the kubelet), a 2 s gap, `podman run` with the new
tag on the same volume, wait for ready, next. Then `podman exec moscow-time-N cat visits`.

Twice: with the chart's shutdown delay (no request may fail), and with the delay set to 0 (the
must-fail check: requests do fail, so the rehearsal can tell the difference).
Each check asserts; the figures are printed.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared helpers: tests/pyhelpers
from pyhelpers.live import free_port, http_status, wait_until  # noqa: E402
from pyhelpers.rollout import roll as rolling_restart  # noqa: E402
from rehearsal import Balancer, Load, Outcome  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "moscow-time"
NAMES = ["moscow-time-0", "moscow-time-1", "moscow-time-2"]
HEADLESS_ALIAS = "moscow-time-headless"   # the headless Service's stand-in on the podman network
LABEL = "org.moscow-time.rehearsal=rollout"



def result(ok: bool, what: str) -> bool:
    """One check: fails the test with `what` unless `ok`; says what held when it does."""
    assert ok, what
    print(f"ok: {what}", flush=True)
    return True


def podman(*args: str, check: bool = True) -> str:
    run = subprocess.run(["podman", *args], capture_output=True, text=True)
    if check and run.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {run.stderr.strip()}")
    return run.stdout.strip()


@dataclass
class PodSpec:
    """What the rendered chart gives a pod, turned into `podman run` flags."""

    env: dict[str, str]
    config_json: str
    config_dir: str
    grace_secs: int
    delay_secs: int
    flags: list[str]


def render_pod_spec(helm: str) -> PodSpec:
    rendered = subprocess.run([helm, "template", "moscow-time", str(CHART), "--namespace", "moscow-time"],
                              check=True, capture_output=True, text=True).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "moscow-time")
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    config_path = Path(env["CONFIG_FILE"])
    config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    # The chart serves its pod template's annotation as the config file (a downward API volume).
    items = next(v for v in pod["volumes"] if v["name"] == "config")["downwardAPI"]["items"]
    field = next(i["fieldRef"]["fieldPath"] for i in items if i["path"] == config_path.name)
    annotation = field.removeprefix("metadata.annotations['").removesuffix("']")
    config_json = sts["spec"]["template"]["metadata"]["annotations"][annotation]
    sc = container["securityContext"]
    flags = ["--cap-drop=ALL"] if sc["capabilities"]["drop"] == ["ALL"] else []
    if sc.get("readOnlyRootFilesystem"):
        flags += ["--read-only", "--read-only-tmpfs=false"]
    if sc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt=no-new-privileges"]
    flags += [f"--user={sc['runAsUser']}:{sc['runAsGroup']}"]
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")["emptyDir"]
    flags += [f"--tmpfs=/tmp:rw,mode=1777,size={tmp['sizeLimit'].replace('Mi', 'm')}"]
    return PodSpec(env=env, config_json=config_json, config_dir=config_mount["mountPath"],
                   grace_secs=pod["terminationGracePeriodSeconds"],
                   delay_secs=json.loads(config_json).get("shutdown_delay_secs", 0), flags=flags)


class Pod:
    """One container `moscow-time-N` with its named volume and its port published on 127.0.0.1."""

    def __init__(self, name: str, run_id: str, spec: PodSpec, network: str, config_host_dir: Path,
                 extra_env: dict[str, str]):
        self.name = name
        self.volume = f"{run_id}-{name}"
        self.port = free_port()
        self.spec = spec
        self.network = network
        self.config_host_dir = config_host_dir
        self.extra_env = extra_env
        self.mountpoint: Path | None = None

    def run(self, image: str) -> None:
        env = dict(self.spec.env, POD_NAME=self.name, PEERS_DNS=HEADLESS_ALIAS, **self.extra_env)
        args = ["run", "-d", "--name", self.name, "--label", LABEL, *self.spec.flags,
                "--network", self.network, "--network-alias", HEADLESS_ALIAS,
                "-p", f"127.0.0.1:{self.port}:{self.spec.env['PORT']}",
                "-v", f"{self.volume}:{self.spec.env['DATA_DIR']}",
                "-v", f"{self.config_host_dir}:{self.spec.config_dir}:ro"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        podman(*args, image)

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            state = podman("inspect", "--format", "{{.State.Status}} exit code {{.State.ExitCode}} {{.State.Error}}",
                           self.name)
            if not state.startswith("running"):
                raise AssertionError(f"{self.name} is {state}; its last log lines: {self.logs()}")
            return http_status(f"http://127.0.0.1:{self.port}/readyz") == 200
        wait_until(ready, timeout, f"{self.name} to be ready", interval=0.1)

    def stop(self) -> tuple[int, float]:
        """What the kubelet does: SIGTERM, SIGKILL at the grace period. Returns (exit code, seconds)."""
        started = time.monotonic()
        podman("stop", "-t", str(self.spec.grace_secs), self.name)
        seconds = time.monotonic() - started
        code = int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name))
        podman("rm", self.name)
        return code, seconds

    def image(self) -> str:
        return podman("inspect", "--format", "{{.ImageName}}", self.name)

    def visits_on_volume(self) -> int:
        """The count read from the host side of the volume (cheaper than an exec, for polling)."""
        if not self.mountpoint:
            self.mountpoint = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", self.volume))
        path = self.mountpoint / "visits"
        return int(path.read_text()) if path.exists() else 0

    def cat_visits(self) -> str:
        return podman("exec", self.name, "cat", "visits")

    def logs(self) -> str:
        return podman("logs", "--tail", "15", self.name, check=False)

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)
        podman("volume", "rm", "-f", self.volume, check=False)


@contextlib.contextmanager
def one_rehearsal_at_a_time(lock_path: Path, timeout: float = 900):
    """The container names are fixed, so concurrent runs (several engineers, one machine) take
    turns. Whatever carries the rehearsal's label while the lock is held is a leftover of a run
    that died: it is removed. A container with one of the names but without the label is
    somebody else's: the rehearsal refuses to touch it."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another rollout rehearsal held {lock_path} for {timeout} s")
                time.sleep(1)
        remove_leftovers()
        yield


def remove_leftovers() -> None:
    for name in NAMES:
        labels = podman("inspect", "--format", "{{json .Config.Labels}}", name, check=False)
        if labels and LABEL.split("=")[0] not in labels:
            raise RuntimeError(f"a container named {name} exists and is not from this rehearsal")
    for kind, remove in (("ps -aq", "rm -f -t 0"), ("volume ls -q", "volume rm -f"), ("network ls -q", "network rm -f")):
        for leftover in podman(*kind.split(), "--filter", f"label={LABEL}").split():
            podman(*remove.split(), leftover, check=False)


def rehearse(image: str, next_image: str, spec: PodSpec, config_dir: Path, work: Path, run_id: str,
             delay_override: int | None) -> None:
    delay = spec.delay_secs if delay_override is None else delay_override
    label = f"containers, delay {delay} s"
    network = f"{run_id}-net"
    extra_env = {} if delay_override is None else {"SHUTDOWN_DELAY_SECS": str(delay_override)}
    pods = [Pod(name, run_id, spec, network, config_dir, extra_env) for name in NAMES]
    balancer = load = None
    podman("network", "create", "--label", LABEL, network)
    try:
        for pod in pods:
            podman("volume", "create", "--label", LABEL, pod.volume)
            pod.run(image)
        for pod in pods:
            pod.wait_ready()
        found_peers(label, pods[0])
        balancer = Balancer(work, pods, "tcp")
        balancer.start()
        balancer.wait_states({name: "UP" for name in NAMES})
        load = Load(work, balancer.url)
        load.start()
        time.sleep(2)  # load pacing: steady state first
        stops = roll(pods, next_image, label, delay)
        time.sleep(2)  # and again after
        outcome = load.stop(lambda: sum(pod.visits_on_volume() for pod in pods))
        report(label, outcome, load.seconds, stops)
        check_outcome(label, outcome, pods, next_image, must_fail=delay == 0)
    finally:
        if load:
            load.kill()
        if balancer:
            balancer.stop()
        for pod in pods:
            pod.remove()
        podman("network", "rm", "-f", network, check=False)


def roll(pods: list[Pod], next_image: str, label: str, delay: int) -> list[str]:
    """What the StatefulSet controller does on an update, highest ordinal first."""
    def stop(pod: Pod) -> str:
        code, seconds = pod.stop()
        result(code == 0 and seconds >= delay,
               f"{label}: {pod.name} exited {code} on SIGTERM after {seconds:.1f} s (the delay is {delay} s)")
        return f"{pod.name} {seconds:.1f} s"

    def start(pod: Pod) -> None:
        pod.run(next_image)
        pod.wait_ready()
    return rolling_restart(pods, stop, start)


def found_peers(label: str, pod: Pod) -> None:
    """PEERS_DNS names the network alias, as the chart's names the headless Service: all three answer."""
    def three_pods() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{pod.port}/visits/cluster", timeout=2) as r:
                view = json.load(r)
        except (OSError, ValueError):
            return False
        return sorted(p["instance"] for p in view["pods"]) == NAMES and not view["unreachable"]
    try:
        wait_until(three_pods, 10, "the cluster view", interval=0.5)
        result(True, f"{label}: {pod.name} finds all three through PEERS_DNS={HEADLESS_ALIAS}")
    except AssertionError as e:
        result(False, f"{label}: {pod.name} does not find all three through PEERS_DNS: {e}")


def report(label: str, outcome: Outcome, seconds: float, stops: list[str]) -> None:
    print(f"FIGURES {label}: {outcome.summary()} over {seconds:.0f} s; "
          f"podman stop took {', '.join(stops)}", flush=True)


def check_outcome(label: str, outcome: Outcome, pods: list[Pod], next_image: str, must_fail: bool) -> None:
    result(all(p.image() == next_image for p in pods), f"{label}: all three run {next_image}")
    print(f"{label}: what an operator sees afterwards", flush=True)
    counts = {}
    for pod in pods:
        counts[pod.name] = pod.cat_visits()
        print(f"  $ podman exec {pod.name} cat visits\n  {counts[pod.name]}", flush=True)
    total = sum(int(c) for c in counts.values())
    repeated = outcome.repeated_numbers()
    result(not repeated, f"{label}: no visit number handed out twice by one container {repeated or ''}")
    result(outcome.page_views > 1000, f"{label}: enough load ({outcome.page_views} page views)")
    if must_fail:
        result(outcome.failures > 0, f"{label}: requests fail without the delay ({outcome.failures} of "
                                     f"{outcome.requests}), so the rehearsal tells the difference")
        result(total >= outcome.page_views, f"{label}: no acknowledged visit lost ({total} >= {outcome.page_views})")
        return
    result(outcome.failures == 0, f"{label}: no failed request ({outcome.summary()})")
    problems = outcome.disagreements({name: int(count) for name, count in counts.items()})
    result(not problems, f"{label}: the three visits files sum to the 200 answers "
                         f"({' + '.join(counts.values())} = {total}, 200 answers: {outcome.page_views}), "
                         f"each container's numbers run 1..its count {'; '.join(problems)}")


@contextlib.contextmanager
def workspace(image: str, spec: PodSpec):
    """A second tag of the image to roll onto, and a folder with the chart's config.json, readable
    by uid 65532; one rehearsal at a time on this machine. Yields (folder, next image)."""
    next_image = image.rsplit(":", 1)[0] + ":rollout-next"
    podman("tag", image, next_image)
    try:
        with one_rehearsal_at_a_time(ROOT / ".tools" / "container" / "rollout-rehearsal.lock"), \
                tempfile.TemporaryDirectory(prefix="mt-rollout-") as tmp:
            work = Path(tmp)
            os.chmod(work, 0o755)                  # the config is read by uid 65532
            (work / "config").mkdir(mode=0o755)
            (work / "config" / "config.json").write_text(spec.config_json)
            os.chmod(work / "config" / "config.json", 0o644)
            yield work, next_image
    finally:
        podman("untag", image, next_image, check=False)


def rehearse_in(work: Path, image: str, next_image: str, spec: PodSpec, delay_override: int | None) -> None:
    """One rehearsal in its own folder of `work`: with the chart's delay (None) or another."""
    run_dir = work / f"delay-{'chart' if delay_override is None else delay_override}"
    run_dir.mkdir()
    rehearse(image, next_image, spec, work / "config", run_dir, f"mt-rollout-{os.getpid()}-{run_dir.name}",
             delay_override)
