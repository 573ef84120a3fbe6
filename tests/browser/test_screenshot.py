"""The README's picture: three pods with different counts, pod-0's page in headless Chromium.

Runs in the browser stage (to `$BROWSER_OUT/screenshot.png`), so the way the picture is made
keeps working; `scripts/screenshot` runs only this test with the output set to
docs/screenshot.png.
"""

import os

from instances import Cluster, chromium, rows, viewport, wait_for

OUT = os.environ.get("SCREENSHOT", os.path.join(os.environ.get("BROWSER_OUT", "target/browser"), "screenshot.png"))


def test_screenshot_of_three_pods_with_different_counts():
    with Cluster(3) as pods:
        for pod, visits in zip(pods.pods, (4, 9, 6)):
            pod.visit(visits)
        driver = chromium()
        try:
            viewport(driver, 1000, "light", height=760)
            driver.get(pods[0].url + "/")
            # The first view may come from the peers' answers of a moment ago; the next
            # refresh brings every count (pod-0's page view is its fifth visit).
            wait_for(driver, lambda d: [count for _, count, _, _ in rows(d)] == ["5", "9", "6"], "the three counts")
            os.makedirs(os.path.dirname(os.path.abspath(OUT)), exist_ok=True)
            assert driver.save_screenshot(OUT)
        finally:
            driver.quit()
    assert os.path.getsize(OUT) > 10_000
