"""The page as a visitor sees it, in headless Chromium.

Three real instances run on loopback, each listing all three in PEERS. The
test loads the page of one, checks the clock against Moscow time (UTC+3,
computed here from UTC, not from any local zone), watches it tick, reloads
to see the visit number go up by exactly one, checks the cluster line, and
saves a screenshot (``$BROWSER_OUT/page.png``; the README shows a copy).
"""

import datetime as dt
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

BIN = os.environ.get("MOSCOW_TIME_BIN", "target/debug/moscow-time")
OUT = os.environ.get("BROWSER_OUT", "target/browser")
MOSCOW = dt.timezone(dt.timedelta(hours=3))


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_ready(url, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never became ready")


@pytest.fixture(scope="module")
def cluster():
    ports = free_ports(3)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    procs, dirs = [], []
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST", "DATA_DIR", "POD_NAME", "CONFIG_FILE")}
    env.update(RUST_LOG="warn", LOG_FORMAT="json", PEERS=",".join(urls))
    for i, port in enumerate(ports):
        d = tempfile.TemporaryDirectory()
        dirs.append(d)
        procs.append(
            subprocess.Popen(
                [BIN, "--host", "127.0.0.1", "--port", str(port), "--instance", f"pod-{i}", "--data-dir", d.name],
                env=env,
            )
        )
    try:
        for url in urls:
            wait_ready(url)
        # Give the other pods a count of their own, so the total is not trivial.
        for url, n in ((urls[1], 2), (urls[2], 3)):
            for _ in range(n):
                urllib.request.urlopen(url + "/").read()
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            assert p.wait(timeout=10) == 0
        for d in dirs:
            d.cleanup()


@pytest.fixture(scope="module")
def browser():
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
        "--window-size=1000,700",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def shown_time(driver):
    """The clock's text as an aware datetime in Moscow (today's date there)."""
    text = driver.find_element(By.ID, "clock").text
    assert re.fullmatch(r"\d\d:\d\d:\d\d", text), text
    now = dt.datetime.now(MOSCOW)
    h, m, s = map(int, text.split(":"))
    shown = now.replace(hour=h, minute=m, second=s, microsecond=0)
    # Around midnight the shown time may belong to the neighbouring day.
    candidates = [shown + dt.timedelta(days=d) for d in (-1, 0, 1)]
    return min(candidates, key=lambda c: abs((c - now).total_seconds()))


def visit_number(driver):
    return int(driver.find_element(By.ID, "visit").text.lstrip("#"))


def test_the_page_shows_moscow_time_ticks_counts_reloads_and_the_cluster(cluster, browser):
    url = cluster[0]
    browser.get(url + "/")

    first = shown_time(browser)
    assert abs((first - dt.datetime.now(MOSCOW)).total_seconds()) < 5, "the clock shows Moscow time"
    date_text = browser.find_element(By.ID, "date").text
    assert dt.datetime.now(MOSCOW).strftime("%B") in date_text or dt.datetime.now(MOSCOW).day == 1, date_text
    assert "UTC+03:00" in browser.page_source

    time.sleep(2.5)
    later = shown_time(browser)
    assert 1 <= (later - first).total_seconds() <= 5, f"the clock ticks: {first} -> {later}"

    before = visit_number(browser)
    # A page view shows the last known view of the peers and never waits for
    # them; asking for the cluster view makes that view fresh.
    urllib.request.urlopen(url + "/visits/cluster").close()
    browser.refresh()
    assert visit_number(browser) == before + 1, "a reload is exactly one more visit"

    cluster_line = browser.find_element(By.ID, "cluster").text
    expected_total = visit_number(browser) + 2 + 3
    assert f"to this pod (pod-0) · {expected_total} visits across 3 pods" in cluster_line, cluster_line

    # The page loaded nothing from elsewhere and broke no CSP rule.
    logs = browser.get_log("browser")
    assert not [entry for entry in logs if entry["level"] == "SEVERE"], logs

    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "page.png")
    assert browser.save_screenshot(path)
    assert os.path.getsize(path) > 10_000

    with urllib.request.urlopen(url + "/visits/cluster") as r:
        view = json.load(r)
    assert view["total"] == expected_total
