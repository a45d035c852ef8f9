"""The viewer in real headless Chromium (Playwright) against a live daphne + workers site.

Skipped only when /usr/bin/chromium is missing (CI installs it). Screenshots of each test go to
test-artifacts/<test name>.png. See tests/viewer/browser.py for the site the tests run against.
"""

import time

import pytest

from tests.viewer.browser import (CHROMIUM, COUNT_OVERLAY_PIXELS, POINT_NEAR_CENTRE, LiveSite, chromium_browser,
                                  logged_in_page, login, running_site, screenshot)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(LiveSite, tmp_path_factory.mktemp("browser-site")) as live:
        yield live


@pytest.fixture(scope="module")
def browser(site):
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def page(browser, site, request):
    with logged_in_page(browser, site.url, "pathologist", shot=request.node.name, timeout_ms=TIMEOUT_MS) as page:
        yield page


def open_viewer(page, site, slide_id):
    page.goto(f"{site.url}/slides/{slide_id}/viewer/")
    page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")


def key(page, name):
    """A key pressed with the focus on the viewer (OpenSeadragon's keys and ours both apply)."""
    page.locator("#osd .openseadragon-canvas").first.focus()
    page.keyboard.press(name)


def drawn(page):
    return page.evaluate("({...window.pdl1Viewer.drawnCounts, mode: window.pdl1Viewer.mode})")


def test_slide_opens_and_tiles_load(page, site):
    tiles = []
    page.on("response", lambda r: tiles.append((r.url, r.status)) if "_files/" in r.url else None)
    open_viewer(page, site, site.data["sparse"]["slide"])
    page.wait_for_function("window.pdl1Viewer.tilesLoaded >= 4")
    assert tiles and all(status == 200 for _, status in tiles), tiles
    assert all(url.startswith(f"{site.url}/viewer/slides/") for url, _ in tiles)
    stats = page.evaluate("({errors: window.pdl1Viewer.tileErrors, info: window.pdl1Viewer.info})")
    assert stats["errors"] == 0
    assert stats["info"]["width"] == 1024 and stats["info"]["max_zoom_ratio"] > 1
    # OpenSeadragon and its button images come from our static files, never a CDN.
    sources = page.evaluate("[...document.scripts].map(s => s.src).concat([...document.images].map(i => i.src))")
    assert any("/static/vendor/openseadragon/openseadragon" in s for s in sources)
    assert all(s.startswith(site.url) for s in sources if s), sources
    assert page.locator("#case-accession").inner_text() == "S26-BROWSER"
    assert "µm" in page.locator(".scalebar-label").inner_text()
    # Rotation: OpenSeadragon's "r" (viewer focused) and the toolbar button, one step each.
    key(page, "r")
    page.wait_for_function("window.pdl1Viewer.viewer.viewport.getRotation() === 90")
    page.locator("#rotate-left").click()
    page.wait_for_function("window.pdl1Viewer.viewer.viewport.getRotation() === 0")


def test_layers_toggle_and_heatmap(page, site):
    open_viewer(page, site, site.data["dense"]["slide"])
    # 16,000 points over the whole slide: too many for points, the density heatmap shows.
    page.wait_for_function("window.pdl1Viewer.mode === 'heatmap' && window.pdl1Viewer.drawnCounts.heatmapCells > 0")
    screenshot(page, "test_layers_toggle_and_heatmap-heatmap")
    # Zoomed in, points replace the heatmap.
    page.evaluate("window.pdl1Viewer.viewer.viewport.zoomBy(4, undefined, true)")
    page.wait_for_function("""window.pdl1Viewer.mode === 'points'
        && window.pdl1Viewer.drawnCounts.positive > 0 && window.pdl1Viewer.drawnCounts.negative > 0""")
    both = drawn(page)
    pixels = page.evaluate(COUNT_OVERLAY_PIXELS)
    assert pixels["red"] > 0 and pixels["yellow"] > 0

    key(page, "p")  # hide positive
    page.wait_for_function("window.pdl1Viewer.drawnCounts.positive === 0")
    assert drawn(page)["negative"] == both["negative"]
    no_red = page.evaluate(COUNT_OVERLAY_PIXELS)
    assert no_red["red"] == 0 and no_red["yellow"] > 0
    assert not page.locator("#layer-positive").is_checked()

    page.locator("#layer-negative").uncheck()  # hide negative through the panel
    page.wait_for_function("window.pdl1Viewer.drawnCounts.negative === 0")
    assert page.evaluate(COUNT_OVERLAY_PIXELS) == {"red": 0, "yellow": 0}

    key(page, "p")
    page.locator("#layer-negative").check()
    page.wait_for_function(f"window.pdl1Viewer.drawnCounts.positive === {both['positive']}"
                           f" && window.pdl1Viewer.drawnCounts.negative === {both['negative']}")

    # Heatmap off: points even at the home zoom (thinned if need be).
    key(page, "h")
    page.evaluate("window.pdl1Viewer.viewer.viewport.goHome(true)")
    page.wait_for_function("window.pdl1Viewer.mode === 'points' && window.pdl1Viewer.drawnCounts.positive > 2000")


def test_progress_events_while_a_job_runs(page, site):
    site.start_workers()
    open_viewer(page, site, site.data["fresh"]["slide"])
    assert page.locator("#progress").is_hidden()
    page.locator("#start-job-button").click()
    page.wait_for_selector("#progress", state="visible")
    page.wait_for_function("window.pdl1Viewer.progressPath !== null")
    page.wait_for_function("window.pdl1Viewer.lastState && window.pdl1Viewer.lastState.status === 'done'",
                           timeout=90_000)
    result = page.evaluate("""({path: window.pdl1Viewer.progressPath, reason: window.pdl1Viewer.progressPathReason,
        history: window.pdl1Viewer.stateHistory, badge: document.getElementById('progress-path').textContent,
        bar: document.getElementById('progress-bar').style.width,
        status: document.getElementById('progress-status').textContent})""")
    assert float(result["bar"].rstrip("%")) == 100, result
    assert "done" in result["status"]
    statuses = [h[0] for h in result["history"]]
    assert statuses[-1] == "done" and len(statuses) >= 2, result["history"]
    assert any(s in ("queued", "running", "merging") for s in statuses), result["history"]
    if site.live_channel:
        # Redis channel layer: the workers' events reach the page over the websocket.
        assert result["path"] == "live", result
        assert any(h[3] == "ws" and h[0] in ("running", "merging", "done") for h in result["history"]), result
    else:
        # Embedded mode: the in-process channel layer cannot carry worker events; the page says so.
        assert result["path"] == "polling", result
        assert result["reason"] == "live channel silent", result
    assert result["path"] in result["badge"]
    # The finished job's detections and scores replace the empty view.
    page.wait_for_function("document.getElementById('tps').textContent.includes('%')")
    page.wait_for_function("window.pdl1Viewer.pointsLoaded > 0")


def test_correction_updates_tps(page, site):
    job = site.data["sparse"]["job"]
    open_viewer(page, site, site.data["sparse"]["slide"])
    page.wait_for_function("window.pdl1Viewer.correctionsVersion !== null")
    page.wait_for_function("window.pdl1Viewer.mode === 'points' && window.pdl1Viewer.drawnCounts.positive > 0")
    tps_before = page.locator("#tps").inner_text()
    negative_before = page.locator("#count-negative").inner_text()

    target = page.evaluate(POINT_NEAR_CENTRE, 1)
    page.mouse.click(target["x"], target["y"])
    page.wait_for_function("window.pdl1Viewer.selected !== null")
    assert page.evaluate("String(window.pdl1Viewer.selected.id)") == str(target["id"])
    assert "positive" in page.locator("#sel-class").inner_text()
    assert page.locator("#sel-score").inner_text() != "—"

    key(page, "2")  # reclassify as negative
    page.wait_for_function(f"document.getElementById('tps').textContent !== {tps_before!r}")
    assert page.locator("#count-negative").inner_text() != negative_before
    page.wait_for_function("document.getElementById('sel-class').textContent.includes('negative')")
    assert page.locator("#conflict").is_hidden()

    # Someone else corrects meanwhile: the next correction from this page is refused (409),
    # the message says so, and reloading lets the user go on.
    version = page.evaluate("window.pdl1Viewer.correctionsVersion")
    other = page.context.browser.new_context()
    other_page = other.new_page()
    login(other_page, site.url, "colleague")
    token = next(c["value"] for c in other.cookies() if c["name"] == "csrftoken")
    reply = other.request.post(f"{site.url}/api/viewer/jobs/{job}/corrections/",
                               data={"base_version": version, "op": "add", "x": 100, "y": 100, "label": "negative"},
                               headers={"X-CSRFToken": token, "Referer": site.url + "/"})
    assert reply.status == 201, reply.text()
    other.close()

    target = page.evaluate(POINT_NEAR_CENTRE, 1)
    page.mouse.click(target["x"], target["y"])
    page.wait_for_function(f"window.pdl1Viewer.selected && String(window.pdl1Viewer.selected.id) === {str(target['id'])!r}")
    page.locator("#reclass-negative").click()
    page.wait_for_selector("#conflict", state="visible")
    assert "colleague" in page.locator("#conflict-message").inner_text()
    screenshot(page, "test_correction_updates_tps-conflict")
    # Trying again without reloading is refused again: the page has not seen the colleague's change.
    with page.expect_response(lambda r: r.url.endswith("/corrections/") and r.request.method == "POST") as again:
        page.locator("#reclass-negative").click()
    assert again.value.status == 409
    page.locator("#conflict-reload").click()
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 1}")
    tps_reloaded = page.locator("#tps").inner_text()
    page.locator("#reclass-negative").click()
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 2}")
    page.wait_for_function(f"document.getElementById('tps').textContent !== {tps_reloaded!r}")
    assert page.locator("#conflict").is_hidden()

    # Add mode: a click on the slide places a positive point there.
    positive_before = page.locator("#count-positive").inner_text()
    key(page, "m")
    assert page.locator("#add-mode").get_attribute("aria-pressed") == "true"
    box = page.locator("#osd").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2 + 13, box["y"] + box["height"] / 2 + 7)
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 3}")
    page.wait_for_function(f"document.getElementById('count-positive').textContent !== {positive_before!r}")
    assert page.evaluate("String(window.pdl1Viewer.selected.id)").startswith("c")
    key(page, "Escape")
    time.sleep(0.2)  # let the redraw land in the screenshot
