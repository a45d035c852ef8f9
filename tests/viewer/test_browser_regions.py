"""Drawing a region in the viewer (real headless Chromium against a live site): an exclusion
polygon drawn with clicks and closed with Enter changes the counts and TPS; the hot-spot layer draws.
Screenshot: test-artifacts/test_draw_exclusion_region_changes_scores.png."""

import time

import pytest

from tests.viewer.browser import (CHROMIUM, LiveSite, chromium_browser, draw_square_region, logged_in_page,
                                  running_site, screenshot)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(LiveSite, tmp_path_factory.mktemp("browser-regions")) as live:
        yield live


@pytest.fixture
def page(site):
    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist",
                                                       timeout_ms=TIMEOUT_MS) as page:
        yield page


def counts(page):
    return {k: page.locator(f"#{k}").inner_text() for k in ("count-positive", "count-negative", "tps")}


def test_draw_exclusion_region_changes_scores(page, site):
    page.goto(f"{site.url}/slides/{site.data['sparse']['slide']}/viewer/")
    page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")
    page.wait_for_function("window.pdl1Viewer.correctionsVersion !== null")
    page.wait_for_function("window.pdl1Viewer.mode === 'points' && window.pdl1Viewer.drawnCounts.positive > 0")
    before = counts(page)
    version = page.evaluate("window.pdl1Viewer.correctionsVersion")

    draw_square_region(page, "necrosis")

    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 1}")
    page.wait_for_function("window.pdl1Viewer.regions.length === 1 && window.pdl1Viewer.drawnCounts.regions === 1")
    after = counts(page)
    assert after["count-positive"] != before["count-positive"] or after["count-negative"] != before["count-negative"]
    total = lambda c: int(c["count-positive"].replace(",", "")) + int(c["count-negative"].replace(",", ""))  # noqa: E731
    assert total(after) < total(before)
    region = page.evaluate("window.pdl1Viewer.regions[0]")
    assert region["kind"] == "necrosis" and region["include"] is False and len(region["vertices"]) == 4
    assert "necrosis" in page.locator("#region-list").inner_text()

    # The TPS hot-spot layer (fewer than 20 cells per 1 mm² field on this small slide: min_cells applies).
    page.locator("#layer-hotspots").check()
    page.wait_for_function("window.pdl1Viewer.hotspots !== null")
    assert page.locator("#hotspot-line").inner_text() != ""
    time.sleep(0.2)
    screenshot(page, "test_draw_exclusion_region_changes_scores")

    # Deleting the region restores the scores (the row stays in the history).
    page.locator("#region-list .region-delete").first.click()
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 2}")
    page.wait_for_function("window.pdl1Viewer.regions.length === 0")
    assert counts(page) == before
