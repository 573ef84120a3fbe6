"""The chart-to-binary contract: run the real binary exactly as the rendered pod would run it.

The container spec (env, args, port, probe paths, PVC mount path, config file content and its mount
path) is taken from the rendered StatefulSet; paths are mapped into a temp folder and the port to
a free one. Binary: $MOSCOW_TIME_BIN, default target/debug/moscow-time.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, SOURCES, config_json, main_container, render, the_statefulset
from pyhelpers.live import free_port, http_get, stop_process, wait_until

BIN = Path(os.environ.get("MOSCOW_TIME_BIN", ROOT / "target" / "debug" / "moscow-time"))
FAKE_POD = "moscow-time-7"


def get(port: int, path: str, accept: str | None = None, timeout: float = 5.0) -> tuple[int, str]:
    answer = http_get(f"http://127.0.0.1:{port}{path}", timeout, accept)
    return answer.status, answer.body


def pod_environment(docs, tmp: Path, port: int) -> tuple[dict, list[str], dict]:
    """The container's env with paths and port mapped; returns (env, argv, facts)."""
    sts = the_statefulset(docs)
    c = main_container(sts)
    assert not c.get("command"), "the image ENTRYPOINT is the binary; command must not override it"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    data_dir = next(e["value"] for e in c["env"] if e["name"] == "DATA_DIR")
    cfg_path, _, cfg_raw = config_json(docs, sts)
    # the data volume: what is mounted at DATA_DIR (the PVC, or the emptyDir without persistence)
    assert any(m["mountPath"].rstrip("/") == data_dir for m in c["volumeMounts"])
    (tmp / "data").mkdir()
    (tmp / "config.json").write_text(cfg_raw)
    mapping = {data_dir: str(tmp / "data"), cfg_path: str(tmp / "config.json")}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp)}
    for e in c["env"]:
        if "value" in e:
            value = e["value"]
            if e["name"] == "PORT":
                assert int(value) == ports["http"], "PORT must be the containerPort named http"
                value = str(port)
            env[e["name"]] = mapping.get(value, value)
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[e["name"]] = FAKE_POD
        # other valueFrom (Secrets, resources) do not exist outside a cluster: left out
    probes = {name: c[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")
              if name in c}
    probe_ports = {}
    for name, hg in probes.items():
        number = ports[hg["port"]] if isinstance(hg["port"], str) else hg["port"]
        assert number == ports["http"]
        probe_ports[name] = (port, hg["path"])  # containerPort http -> the free port
    cfg = json.loads(cfg_raw)
    facts = {"probes": probe_ports, "shutdown": cfg.get("shutdown_timeout_secs", 20),
             "delay": cfg.get("shutdown_delay_secs", 0)}
    return env, [str(BIN), *c.get("args", [])], facts


@pytest.fixture(scope="module")
def binary() -> Path:
    if not BIN.exists():
        pytest.fail(f"{BIN} is missing: build it (cargo build) or set MOSCOW_TIME_BIN")
    return BIN


@pytest.mark.parametrize("source", [s for s in SOURCES if s in ("chart:default", "k8s")]
                         + [s for s in SOURCES if s not in ("chart:default", "k8s")])
def test_the_binary_serves_probes_and_counts_visits_with_the_rendered_pod_spec(binary, source, tmp_path):
    docs = render(source)
    port = free_port()
    env, argv, facts = pod_environment(docs, tmp_path, port)
    log = open(tmp_path / "log", "wb")
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        def ready() -> bool:
            assert proc.poll() is None, f"exited {proc.returncode}: {(tmp_path / 'log').read_text()}"
            try:
                return get(port, "/readyz", timeout=1)[0] == 200
            except OSError:
                return False
        wait_until(ready, 30, lambda: "readiness; the log: " + (tmp_path / "log").read_text())
        for name, (p, path) in facts["probes"].items():
            assert path != "/"
            status, _ = get(p, path)
            assert status == 200, f"{name} {path} answered {status}"
        status, _ = get(port, "/")
        assert status == 200
        assert (tmp_path / "data" / "visits").read_text() == "1\n"
        for _ in range(3):
            for p, path in facts["probes"].values():
                get(p, path)
        assert (tmp_path / "data" / "visits").read_text() == "1\n", "probes changed the count"
        status, body = get(port, "/visits", accept="application/json")
        assert status == 200
        doc = json.loads(body)
        assert doc == {"visits": 1, "instance": FAKE_POD} or (
            doc["visits"] == 1 and doc["instance"] == FAKE_POD)
        lines = [ln for ln in (tmp_path / "log").read_text().splitlines() if ln.strip()]
        assert lines and all(ln.lstrip().startswith("{") for ln in lines), "LOG_FORMAT=json not honoured"
        if facts["delay"]:
            # The pod's shutdown delay: unready at once, still serving; a second SIGTERM ends it.
            proc.send_signal(signal.SIGTERM)
            wait_until(lambda: get(port, "/readyz")[0] == 503, 10, "readiness to fail on SIGTERM")
            assert get(port, "/")[0] == 200, "visits are served during the shutdown delay"
    finally:
        rc = stop_process(proc, facts["shutdown"] + 5)
        log.close()
    assert rc == 0, f"SIGTERM exit code {rc} (None: killed at the timeout): {(tmp_path / 'log').read_text()}"
