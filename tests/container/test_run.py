"""The image run as the chart's pod runs (read-only root, no capabilities, uid 65532, a volume at
/data): it counts, `cat visits` reads the count, SIGTERM stops it cleanly, a second container on
the same volume counts on, and getaddrinfo in the scratch image resolves a peer name through DNS."""
from __future__ import annotations

import json
import subprocess
import sys

from pyhelpers.live import log_contains, stop_process, wait_until
from pyhelpers.tools import ROOT

DNS_ADDRESS = "127.53.0.1"   # loopback; the test DNS responder listens here
DNS_NAME = "peers.moscow-time.test"


def test_a_pod_counts_stops_cleanly_and_the_next_counts_on(image, containers):
    volume = containers.volume()
    first = containers.container(image, volume=volume)
    first.run()
    first.wait_ready()
    assert [first.visit() for _ in range(3)] == [1, 2, 3]
    assert first.exec("cat", "visits").stdout.strip() == "3"
    assert first.get("/visits").strip() == "3"

    status = dict(line.split(":", 1) for line in first.exec("cat", "/proc/1/status").stdout.splitlines())
    assert status["Uid"].split() == ["65532"] * 4
    assert status["Gid"].split() == ["65532"] * 4
    assert status["CapEff"].strip() == "0000000000000000"
    json.loads(first.logs().splitlines()[0])  # JSON lines: stdout is not a terminal

    # SIGTERM: the drain ends in exit 0; a SIGKILL at the grace period would be 137.
    assert first.stop(grace=10) == 0

    second = containers.container(image, volume=volume)
    second.run()
    second.wait_ready()
    assert second.visit() == 4
    assert second.exec("cat", "visits").stdout.strip() == "4"
    assert second.stop(grace=10) == 0


def test_the_scratch_image_resolves_a_peer_name_through_dns(image, containers, tmp_path):
    # The service resolves PEERS_DNS with getaddrinfo. A DNS responder on a loopback address answers
    # that name with 127.0.0.1, and the container runs in the host's network namespace, so the peer
    # it discovers is itself.
    log = tmp_path / "dns.log"
    with open(log, "wb") as out:
        responder = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "container" / "loopback-dns.py"),
                                      DNS_ADDRESS, DNS_NAME, "127.0.0.1"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: log_contains(log, " answers ") or responder.poll() is not None, 10,
                   "the DNS responder to listen")
        assert responder.poll() is None, f"the DNS responder exited: {log.read_text()}"
        pod = containers.container(image, published=False, volume=containers.volume(),
                                   extra=["--network=host", f"--dns={DNS_ADDRESS}"])
        pod.env = {"HOST": "127.0.0.1", "PORT": str(pod.port), "PEERS_DNS": DNS_NAME}
        pod.run()
        pod.wait_ready()
        pod.visit()
        url = pod.url

        def view():
            v = json.loads(pod.get("/visits/cluster"))
            return v if url in [p.get("peer") for p in v["pods"]] else None
        found = wait_until(view, 30, f"/visits/cluster to find {url} through {DNS_NAME}")
        assert found["unreachable"] == [] and found["total"] == 1, found
        assert pod.stop(grace=10) == 0
    finally:
        stop_process(responder)
