"""The page as a visitor sees it, in headless Chromium, against real instances on loopback.

Three instances list each other in PEERS. The tests load one's page and check: the clock
shows Moscow time (UTC+3, computed here from UTC) and ticks; a reload is exactly one visit;
the per-pod rows equal `/visits/cluster` and each instance's `visits` file; visits sent to
another pod show up without a reload and without counting here; a stopped pod is marked
unreachable and comes back; a hidden tab stops asking; the console stays free of errors;
axe-core finds no WCAG 2 A/AA violation at 360 and 1280 px, light and dark, with one pod
alone, one pod with peers, three pods and fifty. Every wait is for an event, bounded by
a deadline that fires only when the event never happens.
"""

import datetime as dt
import os
import re

import pytest
from selenium.webdriver.common.by import By

from instances import (
    CLUSTER_REQUESTS,
    DEADLINE,
    Cluster,
    ManyPeers,
    axe_violations,
    check_emulation,
    chromium,
    cluster_view,
    favicon_requests,
    poll_period,
    rows,
    severe_console_entries,
    viewport,
    wait_for,
    wait_until,
)

OUT = os.environ.get("BROWSER_OUT", "target/browser")
MOSCOW = dt.timezone(dt.timedelta(hours=3))
# What one answer of /visits/cluster may take on top of the page's refresh period
# (a loaded machine, a peer round): the bound for "shows up within the refresh period".
ANSWER_SLACK = 3


@pytest.fixture(scope="module")
def cluster():
    with Cluster(3) as c:
        # Give the other pods counts of their own, so the rows differ.
        c[1].visit(2)
        c[2].visit(3)
        yield c


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
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


def live(driver):
    return driver.find_element(By.ID, "pods").get_attribute("data-state") == "live"


def row_of(driver, name):
    return next((r for r in rows(driver) if r[0] == name), None)


def test_the_clock_shows_moscow_time_ticks_and_a_reload_is_one_visit(cluster, browser):
    url = cluster[0].url
    browser.get(url + "/")

    first = shown_time(browser)
    assert abs((first - dt.datetime.now(MOSCOW)).total_seconds()) < 5, "the clock shows Moscow time"
    date_text = browser.find_element(By.ID, "date").text
    assert dt.datetime.now(MOSCOW).strftime("%B") in date_text or dt.datetime.now(MOSCOW).day == 1, date_text
    assert "UTC+03:00" in browser.page_source
    wait_for(browser, lambda d: shown_time(d) >= first + dt.timedelta(seconds=2), "the clock to tick twice")

    before = visit_number(browser)
    browser.refresh()
    assert visit_number(browser) == before + 1, "a reload is exactly one more visit"
    line = browser.find_element(By.ID, "visit-line").text
    assert line == f"You are visit #{before + 1} to pod-0.", line


def test_the_rows_equal_the_cluster_view_and_each_visits_file(cluster, browser):
    browser.get(cluster[0].url + "/")
    wait_for(browser, lambda d: live(d) and len(rows(d)) == 3, "three live rows")
    view = cluster_view(cluster[0].url)
    on_disk = {pod.name: pod.count_on_disk() for pod in cluster.pods}
    total = sum(on_disk.values())

    shown = rows(browser)
    assert [(name, int(count)) for name, count, _, _ in shown] == [(p["instance"], p["visits"]) for p in view["pods"]]
    assert {name: int(count) for name, count, _, _ in shown} == on_disk
    assert view["total"] == total
    assert browser.find_element(By.ID, "total").text == str(total)
    assert [share for _, _, share, _ in shown] == [f"{on_disk[name] * 100 // total}%" for name, _, _, _ in shown]
    assert [kind for *_, kind in shown] == ["self", "pod", "pod"], "this pod is marked, and only this pod"
    assert "(this pod)" in browser.find_element(By.CSS_SELECTOR, "#pods-rows tr.self th").text, "not by colour alone"
    bars = browser.execute_script(
        "return [...document.querySelectorAll('#pods-rows meter')].map(m => [m.value, m.max])"
    )
    assert bars == [[on_disk[name], total] for name, _, _, _ in shown], "each bar is its count out of the total"


def test_visits_elsewhere_show_up_without_a_reload_and_without_counting_here(cluster, browser):
    browser.get(cluster[0].url + "/")
    browser.execute_script("window.notReloaded = true")
    here = cluster[0].count()
    period = poll_period(browser)

    cluster[2].visit(4)
    expected = str(cluster[2].count())

    wait_for(
        browser,
        lambda d: (row_of(d, "pod-2") or [None, None])[1] == expected,
        f"pod-2's row to show {expected}",
        timeout=period + ANSWER_SLACK,
    )
    assert browser.execute_script("return window.notReloaded === true"), "the page was not reloaded"
    assert cluster[0].count() == here and cluster[0].count_on_disk() == here, "the refresh counted no visit"


def test_a_stopped_pod_is_marked_unreachable_and_comes_back(cluster, browser):
    browser.get(cluster[0].url + "/")
    wait_for(browser, lambda d: live(d) and len(rows(d)) == 3, "three live rows")
    cluster[1].stop()
    try:
        down = wait_for(
            browser,
            lambda d: (r := row_of(d, "pod-1")) and r[3] == "down" and r,
            "pod-1 marked unreachable",
        )
        assert down[1] == "?" and "connection" in down[2], down
        row = browser.find_element(By.CSS_SELECTOR, "#pods-rows tr.down th").text
        assert "(unreachable)" in row, "not by colour alone"
    finally:
        cluster[1].start()
    expected = str(cluster[1].count_on_disk())
    wait_for(
        browser,
        lambda d: (r := row_of(d, "pod-1")) and r[3] == "pod" and r[1] == expected,
        "pod-1 back with its count",
    )


def test_a_hidden_tab_stops_asking_and_asks_again_when_shown(cluster, browser):
    browser.get(cluster[0].url + "/")
    here = browser.current_window_handle
    asked_here = lambda: cluster[0].metric(CLUSTER_REQUESTS)  # noqa: E731
    asked_there = lambda: cluster[1].metric(CLUSTER_REQUESTS)  # noqa: E731

    # Another tab in front hides this one (the visibilitychange event fires).
    browser.switch_to.new_window("tab")
    try:
        browser.get(cluster[1].url + "/")
        assert browser.execute_script("return document.visibilityState") == "visible"
        # The front tab's own requests are the clock: wait for its first one, so a request
        # the hidden tab had in flight when it was hidden has landed, then for two more
        # (two refresh periods) and count what the hidden tab asked meanwhile.
        start = asked_there()
        wait_until(lambda: asked_there() >= start + 1, DEADLINE, "the front tab's first refresh")
        hidden_base = asked_here()
        front = asked_there()
        wait_until(lambda: asked_there() >= front + 2, 60, "two more refreshes of the front tab")
        assert asked_here() == hidden_base, "the hidden tab asked for the cluster view"
    finally:
        browser.close()
        browser.switch_to.window(here)
    # Shown again, it asks at once.
    wait_until(lambda: asked_here() > hidden_base, ANSWER_SLACK + 2, "the shown tab to ask again")


def test_the_console_has_no_errors_and_the_favicon_was_fetched(cluster):
    # A first-time visitor: a fresh profile, so the icon is not in the cache yet.
    driver = chromium()
    try:
        icons = favicon_requests(cluster[0].url)
        asked = cluster[0].metric(CLUSTER_REQUESTS)
        driver.get(cluster[0].url + "/")
        wait_until(lambda: favicon_requests(cluster[0].url) > icons, DEADLINE, "the browser to fetch /favicon.ico")
        wait_until(lambda: cluster[0].metric(CLUSTER_REQUESTS) > asked, DEADLINE, "the page's first refresh")
        assert severe_console_entries(driver) == []

        os.makedirs(OUT, exist_ok=True)
        path = os.path.join(OUT, "page.png")
        assert driver.save_screenshot(path)
        assert os.path.getsize(path) > 10_000
    finally:
        driver.quit()


def test_the_stale_mark_keeps_the_last_numbers_and_backs_off_until_the_pod_answers_again():
    with Cluster(1) as one:
        driver = chromium()
        try:
            driver.get(one[0].url + "/")
            wait_for(driver, live, "the first refresh")
            shown = rows(driver)
            one[0].stop()
            try:
                wait_for(driver, lambda d: d.find_element(By.ID, "pods").get_attribute("data-state") == "stale", "the stale mark", timeout=30)
                assert driver.find_element(By.ID, "pods-status").text.startswith("Stale:"), "the mark is words, not colour"
                assert rows(driver) == shown, "the last known numbers stay"
                # Each failure doubles the wait: 5 s, then 10, then 20.
                status = lambda d: d.find_element(By.ID, "pods-status").text  # noqa: E731
                assert "Retrying in 10 s." in status(driver), status(driver)
                wait_for(driver, lambda d: "Retrying in 20 s." in status(d), "the second, longer back-off", timeout=30)
                assert rows(driver) == shown
            finally:
                one[0].start()
            wait_for(driver, live, "live again after the pod returned", timeout=30)
        finally:
            driver.quit()


LAYOUTS = [(width, scheme) for width in (360, 1280) for scheme in ("light", "dark")]


def check_layouts(driver, url, expect_rows):
    """Loads the page at each width and scheme; returns axe's violations per layout."""
    found = {}
    for width, scheme in LAYOUTS:
        viewport(driver, width, scheme)
        driver.get(url + "/")
        check_emulation(driver, width, scheme)
        if expect_rows:
            wait_for(driver, lambda d: live(d) and len(rows(d)) == expect_rows, f"{expect_rows} live rows")
        overflow = driver.execute_script("return document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0, f"{width} px {scheme}: {overflow} px wider than the screen"
        found[(width, scheme)] = axe_violations(driver)
    print(f"\naxe-core WCAG 2 A/AA violations at {url}: " + ", ".join(f"{w}px {s}: {len(v)}" for (w, s), v in found.items()))
    return found


@pytest.fixture(scope="module")
def axe_browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.mark.parametrize("setup", ["alone", "one pod with peers", "three pods", "fifty pods and a dead peer"])
def test_axe_finds_no_wcag_violations_and_nothing_overflows(setup, cluster, axe_browser):
    if setup == "three pods":
        found = check_layouts(axe_browser, cluster[0].url, 3)
    elif setup == "fifty pods and a dead peer":
        with ManyPeers(49) as many, Cluster(1, extra_peers=many.urls + ["http://127.0.0.1:9"]) as fifty:
            found = check_layouts(axe_browser, fifty[0].url, 51)
            shown = rows(axe_browser)
            assert [kind for *_, kind in shown].count("down") == 1, shown
            assert shown[-1][0] == "http://127.0.0.1:9" and shown[-2][:2] == ["pod-49", "49"], shown[-2:]
    else:
        with Cluster(1, peers=setup != "alone") as one:
            found = check_layouts(axe_browser, one[0].url, 0 if setup == "alone" else 1)
            if setup == "alone":
                assert axe_browser.find_elements(By.ID, "pods") == [], "no chart for one instance alone"
    assert found == {layout: [] for layout in LAYOUTS}


def test_axe_catches_a_planted_low_contrast_text(cluster, axe_browser):
    """The must-fail case: the same check reports a violation we put there."""
    viewport(axe_browser, 1280, "light")
    axe_browser.get(cluster[0].url + "/")
    axe_browser.execute_script(
        "const p = document.createElement('p'); p.id = 'planted'; p.textContent = 'hard to read';"
        "p.style.color = '#bbbbbb'; p.style.background = '#ffffff';"
        "document.querySelector('main').appendChild(p);"
    )
    found = axe_violations(axe_browser)
    assert ("color-contrast", ["#planted"]) in [(rule, targets) for rule, targets in found], found
