"""Where the viewer draws and reads positions, in real headless Chromium against a live site:

- rotation ("r", OpenSeadragon's own key): the markers turn with the tissue, and a click on a drawn marker
  selects that detection; OpenSeadragon's "f" (mirror the tiles only) does nothing;
- the pixel convention: the platform puts pixel i's centre at i, OpenSeadragon's image coordinates put pixel
  i over [i, i + 1). A detection at (x, y) is drawn centred where OpenSeadragon shows (x + 0.5, y + 0.5), and
  a click on the screen position of pixel (i, j)'s centre adds a cell at (i, j).

The positions are checked on the overlay's pixels (the weighted centre of a marker's ring), not through the
viewer's own transform."""

import time

import pytest

from tests.viewer.browser import CHROMIUM, LiveSite, chromium_browser, logged_in_page, running_site, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(LiveSite, tmp_path_factory.mktemp("browser-geometry")) as live:
        yield live


@pytest.fixture
def page(site, request):
    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist", height=900,
                                                       timeout_ms=TIMEOUT_MS) as page:
        yield page
        screenshot(page, f"geometry-{request.node.name}")


def open_sparse(page, site):
    page.goto(f"{site.url}/slides/{site.data['sparse']['slide']}/viewer/")
    page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")
    page.wait_for_function("window.pdl1Viewer.correctionsVersion !== null")
    page.wait_for_function("window.pdl1Viewer.mode === 'points' && window.pdl1Viewer.drawnCounts.positive > 0")


def key(page, name):
    page.locator("#osd .openseadragon-canvas").first.focus()
    page.keyboard.press(name)


def settle(page):
    """The view has stopped moving, its points are loaded and the overlay is drawn for it."""
    page.wait_for_function("(vp => Math.abs(vp.getZoom(true) - vp.getZoom(false)) < 1e-9 &&"
                           " Math.abs(vp.getRotation(true) - vp.getRotation(false)) < 1e-9)"
                           "(window.pdl1Viewer.viewer.viewport)")
    time.sleep(0.6)  # the debounced point query (150-400 ms) and its answer
    frames = page.evaluate("window.pdl1Viewer.frames")
    page.evaluate("window.pdl1Viewer.requestDraw()")
    page.wait_for_function(f"window.pdl1Viewer.frames > {frames}")


# A loaded point of `label` with no other loaded point within `clear` level-0 px and at least `margin` px
# inside the slide (platform coordinates, as the API gives them).
ISOLATED = """([label, clear, margin]) => {
  const v = window.pdl1Viewer, pts = v.points(), w = v.info.width, h = v.info.height;
  for (const p of pts) {
    if (p.label !== label || p.corrected || p.x < margin || p.y < margin || p.x > w - margin || p.y > h - margin) continue;
    if (pts.every(o => o === p || Math.hypot(o.x - p.x, o.y - p.y) > clear)) return p;
  }
  return null;
}"""

# Centre the view on OpenSeadragon image point (x, y) at `zoom` screen px per level-0 px (null: the most).
CENTRE_ON = """([x, y, zoom]) => {
  const vp = window.pdl1Viewer.viewer.viewport;
  vp.panTo(vp.imageToViewportCoordinates(new OpenSeadragon.Point(x, y)), true);
  vp.zoomTo(zoom === null ? vp.getMaxZoom() : vp.imageToViewportZoom(zoom), null, true);
  vp.applyConstraints(true);
}"""

# The viewer element position of OpenSeadragon image point (x, y) (OpenSeadragon's own conversion).
OSD_SCREEN = """([x, y]) => {
  const p = window.pdl1Viewer.viewer.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
  return {x: p.x, y: p.y};
}"""

# The alpha-weighted centre (viewer element px) of the overlay's pixels within `radius` screen px of (sx, sy).
DRAWN_CENTRE = """([sx, sy, radius]) => {
  const c = document.querySelector('canvas.pdl1-overlay'), dpr = window.devicePixelRatio || 1;
  const R = Math.ceil(radius * dpr), cx = Math.round(sx * dpr), cy = Math.round(sy * dpr), n = 2 * R + 1;
  const d = c.getContext('2d').getImageData(cx - R, cy - R, n, n).data;
  let w = 0, x = 0, y = 0;
  for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) {
    const a = d[(j * n + i) * 4 + 3];
    const px = cx - R + i + 0.5, py = cy - R + j + 0.5;  // a canvas pixel's centre
    if (!a || Math.hypot(px - sx * dpr, py - sy * dpr) > R) continue;
    w += a; x += a * px; y += a * py;
  }
  return w ? {x: x / w / dpr, y: y / w / dpr} : null;
}"""


def page_xy(page, screen):
    rect = page.evaluate("(r => ({x: r.left, y: r.top}))(window.pdl1Viewer.viewer.canvas.getBoundingClientRect())")
    return rect["x"] + screen["x"], rect["y"] + screen["y"]


def test_rotated_view_a_click_on_a_drawn_marker_selects_it_and_f_does_not_mirror(page, site):
    open_sparse(page, site)
    point = page.evaluate(ISOLATED, [1, 40, 60])
    assert point is not None
    page.evaluate(CENTRE_ON, [point["x"] + 0.5 + 15, point["y"] + 0.5 + 25, 1.0])  # off centre: rotation moves it
    settle(page)
    key(page, "r")  # OpenSeadragon's key (the viewer has the focus): 90° clockwise
    page.wait_for_function("window.pdl1Viewer.viewer.viewport.getRotation(true) === 90")
    settle(page)
    radius = page.evaluate("window.pdl1Viewer.drawnCounts.markerRadius")
    shown = page.evaluate(OSD_SCREEN, [point["x"] + 0.5, point["y"] + 0.5])  # where the tissue shows the nucleus
    drawn = page.evaluate(DRAWN_CENTRE, [shown["x"], shown["y"], radius + 8])
    assert drawn is not None and abs(drawn["x"] - shown["x"]) < 0.5 and abs(drawn["y"] - shown["y"]) < 0.5, (drawn, shown)
    page.mouse.click(*page_xy(page, drawn))
    page.wait_for_function("window.pdl1Viewer.selected !== null")
    assert str(page.evaluate("window.pdl1Viewer.selected.id")) == str(point["id"])
    settle(page)  # the selection ring is drawn round the same place
    ring = page.evaluate(DRAWN_CENTRE, [shown["x"], shown["y"], radius + 16])
    assert abs(ring["x"] - shown["x"]) < 0.5 and abs(ring["y"] - shown["y"]) < 0.5, (ring, shown)

    # "f" would mirror the tiles and not the overlay: off.
    key(page, "f")
    time.sleep(0.3)
    assert page.evaluate("window.pdl1Viewer.viewer.viewport.getFlip()") is False
    assert "flip" not in page.locator("ul.keys").inner_text()
    # "R" turns back (counter-clockwise).
    key(page, "Shift+R")
    page.wait_for_function("window.pdl1Viewer.viewer.viewport.getRotation(true) === 0")


# An integer pixel (platform coordinates) of the view with no loaded point within `clear` level-0 px.
EMPTY_PIXEL = """(clear) => {
  const v = window.pdl1Viewer, vp = v.viewer.viewport, pts = v.points();
  const c = vp.viewportToImageCoordinates(vp.getCenter(true));
  for (let r = 0; r < 200; r++) for (let k = 0; k < 8; k++) {
    const x = Math.round(c.x - 0.5 + r * Math.cos(k * Math.PI / 4)), y = Math.round(c.y - 0.5 + r * Math.sin(k * Math.PI / 4));
    if (pts.every(p => Math.hypot(p.x - x, p.y - y) > clear)) return {x, y};
  }
  return null;
}"""

# Pan the view (no animation) so that OpenSeadragon image point (x, y) lies on a whole page pixel; its page
# position, and where OpenSeadragon puts the point afterwards (page px).
ON_WHOLE_PIXEL = """([x, y]) => {
  const vp = window.pdl1Viewer.viewer.viewport, rect = window.pdl1Viewer.viewer.canvas.getBoundingClientRect();
  const P = new OpenSeadragon.Point(x, y);
  const s = vp.imageToViewerElementCoordinates(P);
  const want = {x: Math.round(rect.left + s.x), y: Math.round(rect.top + s.y)};
  const move = new OpenSeadragon.Point(s.x - (want.x - rect.left), s.y - (want.y - rect.top));
  vp.panBy(vp.deltaPointsFromPixels(move, true), true);
  const now = vp.imageToViewerElementCoordinates(P);
  return {page: want, osd: {x: rect.left + now.x, y: rect.top + now.y}};
}"""


def test_pixel_centres_a_marker_is_drawn_on_its_pixel_and_a_click_adds_the_pixel_it_is_on(page, site):
    open_sparse(page, site)
    # A detection (x, y): its marker is centred where OpenSeadragon shows (x + 0.5, y + 0.5), at the most zoom
    # (half a level-0 px there is a few screen px).
    point = page.evaluate(ISOLATED, [1, 40, 60])
    assert point is not None
    page.evaluate(CENTRE_ON, [point["x"] + 0.5, point["y"] + 0.5, None])
    settle(page)
    zoom = page.evaluate("(vp => vp.viewportToImageZoom(vp.getZoom(true)))(window.pdl1Viewer.viewer.viewport)")
    assert zoom >= 2, zoom
    radius = page.evaluate("window.pdl1Viewer.drawnCounts.markerRadius")
    shown = page.evaluate(OSD_SCREEN, [point["x"] + 0.5, point["y"] + 0.5])
    drawn = page.evaluate(DRAWN_CENTRE, [shown["x"], shown["y"], radius + 8])
    assert drawn is not None and abs(drawn["x"] - shown["x"]) < 0.3 and abs(drawn["y"] - shown["y"]) < 0.3, \
        (drawn, shown, zoom)

    # A click on the screen position of pixel (i, j)'s centre, in add mode, stores a cell at (i, j).
    pixel = page.evaluate(EMPTY_PIXEL, 30)
    assert pixel is not None
    version = page.evaluate("window.pdl1Viewer.correctionsVersion")
    key(page, "m")  # first: focusing the viewer may scroll the page
    page.evaluate(CENTRE_ON, [pixel["x"] + 0.5, pixel["y"] + 0.5, None])
    settle(page)
    spot = page.evaluate(ON_WHOLE_PIXEL, [pixel["x"] + 0.5, pixel["y"] + 0.5])
    assert abs(spot["osd"]["x"] - spot["page"]["x"]) < 0.01 and abs(spot["osd"]["y"] - spot["page"]["y"]) < 0.01, spot
    settle(page)
    with page.expect_response(lambda r: r.url.endswith("/corrections/") and r.request.method == "POST") as saved:
        page.mouse.click(spot["page"]["x"], spot["page"]["y"])
    assert saved.value.status == 201, saved.value.text()
    sent = saved.value.request.post_data_json
    assert sent["op"] == "add"
    assert abs(sent["x"] - pixel["x"]) <= 0.05 and abs(sent["y"] - pixel["y"]) <= 0.05, (sent, pixel)
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 1}")
    job = site.data["sparse"]["job"]
    items = page.evaluate(f"fetch('/api/viewer/jobs/{job}/corrections/').then(r => r.json())")["items"]
    added = [i for i in items if i["op"] == "add"][-1]
    assert abs(added["x"] - pixel["x"]) <= 0.05 and abs(added["y"] - pixel["y"]) <= 0.05, (added, pixel)
    # The added cell's diamond is drawn on that pixel's centre as well.
    key(page, "Escape")
    settle(page)
    shown = page.evaluate(OSD_SCREEN, [pixel["x"] + 0.5, pixel["y"] + 0.5])
    drawn = page.evaluate(DRAWN_CENTRE, [shown["x"], shown["y"], radius + 8])
    assert drawn is not None and abs(drawn["x"] - shown["x"]) < 0.3 and abs(drawn["y"] - shown["y"]) < 0.3, \
        (drawn, shown)
