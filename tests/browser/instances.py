"""What the browser tests and the screenshot script share: real instances of the
binary on loopback (temp data folders, bounded waits), a fake set of many peers,
headless Chromium, and axe-core injected into the page.
"""

import http.server
import json
import os
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from pyhelpers.live import free_ports, wait_until
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

HERE = Path(__file__).resolve().parent
BIN = os.environ.get("MOSCOW_TIME_BIN", "target/debug/moscow-time")
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
# How long any wait for an event may take before the test fails; a bound, not a pace.
DEADLINE = 20
CLUSTER_REQUESTS = 'moscow_time_http_requests_total{method="GET",route="/visits/cluster",status="200"}'
FAVICON_REQUESTS = 'moscow_time_http_requests_total{method="GET",route="/favicon.ico",status="200"}'


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def metric(url, series):
    """One sample of an instance's /metrics (0 when the series has no sample yet)."""
    for line in get(url + "/metrics").splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


class Instance:
    """One real moscow-time process on a fixed loopback port with its own data folder."""

    def __init__(self, name, port, peers):
        self.name, self.port, self.peers = name, port, peers
        self.url = f"http://127.0.0.1:{port}"
        self.dir = tempfile.TemporaryDirectory()
        self.proc = None

    def start(self):
        env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST", "DATA_DIR", "POD_NAME", "CONFIG_FILE", "PEERS", "PEERS_DNS")}
        env.update(RUST_LOG="warn", LOG_FORMAT="json")
        if self.peers:
            env["PEERS"] = ",".join(self.peers)
        args = [BIN, "--host", "127.0.0.1", "--port", str(self.port), "--instance", self.name, "--data-dir", self.dir.name]
        self.proc = subprocess.Popen(args, env=env)
        wait_until(self.ready, DEADLINE, f"{self.name} to become ready", interval=0.05)

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}")
        try:
            return get(self.url + "/readyz", timeout=1) is not None
        except OSError:
            return False

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=10) == 0

    def visit(self, n=1):
        for _ in range(n):
            get(self.url + "/")

    def count(self):
        return int(get(self.url + "/visits"))

    def count_on_disk(self):
        return int(Path(self.dir.name, "visits").read_text())

    def metric(self, series):
        return metric(self.url, series)


class Cluster:
    """`n` instances named pod-0.. that list each other (themselves included) as peers,
    or, with `peers=False`, one instance with no peers at all."""

    def __init__(self, n, peers=True, extra_peers=()):
        urls = [f"http://127.0.0.1:{p}" for p in free_ports(n)]
        listed = urls + list(extra_peers) if peers else []
        self.pods = [Instance(f"pod-{i}", int(u.rsplit(":", 1)[1]), listed) for i, u in enumerate(urls)]

    def __enter__(self):
        try:
            for pod in self.pods:
                pod.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for pod in self.pods:
            if pod.proc and pod.proc.poll() is None:
                pod.stop()
            pod.dir.cleanup()

    def __getitem__(self, i):
        return self.pods[i]


class ManyPeers:
    """One loopback server standing in for `n` peers: `/pN/visits` answers pod-NN's count N."""

    def __init__(self, n):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                parts = self.path.strip("/").split("/")
                i = int(parts[0][1:])
                body = json.dumps({"visits": i, "instance": f"pod-{i:02d}"}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            # All the peers are asked at once: room for every connection in the backlog.
            request_queue_size = 2 * n

        self.server = Server(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.urls = [f"{base}/p{i}" for i in range(1, n + 1)]

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def chromium(width=1000, height=700):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def viewport(driver, width, scheme, height=800):
    """Emulates a screen `width` CSS pixels wide (a phone below 600) and a colour scheme
    (light or dark), for the pages loaded next."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )


def check_emulation(driver, width, scheme):
    """Whether the loaded page sees the emulated width and colour scheme."""
    assert driver.execute_script(f"return matchMedia('(prefers-color-scheme: {scheme})').matches"), scheme
    assert driver.execute_script("return innerWidth") == width


def axe_violations(driver):
    """axe-core's WCAG 2 A/AA violations on the current page, as (rule id, targets)."""
    if not driver.execute_script("return typeof axe !== 'undefined'"):
        driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})"
        ".then(r => done(r.violations.map(v => [v.id, v.nodes.map(n => n.target.join(' '))])),"
        " e => done([['axe failed', [String(e)]]]));"
    )
    return [tuple(v) for v in result]


def rows(driver):
    """The per-pod table as the page shows it: (name, count, share text, kind)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#pods-rows tr')].map(tr => ["
        "tr.querySelector('.name').textContent, tr.querySelector('.count').textContent,"
        "tr.querySelector('.share').textContent.trim(),"
        "tr.classList.contains('self') ? 'self' : tr.classList.contains('down') ? 'down' : 'pod'])"
    )


def wait_for(driver, condition, what, timeout=DEADLINE):
    """WebDriverWait on a DOM condition (a function of the driver), naming what it waited for."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: condition(d), message=f"waiting for {what}"
    )


def poll_period(driver):
    """The page's refresh period in seconds, as the server wrote it into the page."""
    return int(driver.find_element("id", "pods").get_attribute("data-poll-ms")) / 1000


def severe_console_entries(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def favicon_requests(url):
    return metric(url, FAVICON_REQUESTS)


def cluster_view(url):
    return json.loads(get(url + "/visits/cluster"))


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
