"""The viewer's tools on a 1280×900 screen, in real headless Chromium against a live site (issue 18
items 8 and 9): tools in view over the slide, undo/redo of corrections and region edits by keyboard,
corrected points drawn as diamonds and model points as rings that scale with the zoom and leave the
nucleus visible, magnification buttons, the ruler and editing a region's vertices.
Screenshots: in each test's tmp dir (tools-*.png)."""

import time

import pytest

from tests.viewer.browser import (CHROMIUM, POINT_NEAR_CENTRE, LiveSite, chromium_browser, draw_square_region,
                                  logged_in_page, running_site, screenshot)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

TIMEOUT_MS = 20_000
MPP = 0.5  # the live site's SYNTHETIC slides (tests/viewer/browser.py)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(LiveSite, tmp_path_factory.mktemp("browser-tools")) as live:
        yield live


@pytest.fixture
def page(site):
    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist", height=900,
                                                       timeout_ms=TIMEOUT_MS) as page:
        yield page


def shot(page, name):
    time.sleep(0.2)  # let the last redraw land
    screenshot(page, f"tools-{name}")


def open_sparse(page, site):
    page.goto(f"{site.url}/slides/{site.data['sparse']['slide']}/viewer/")
    page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")
    page.wait_for_function("window.pdl1Viewer.correctionsVersion !== null")
    page.wait_for_function("window.pdl1Viewer.mode === 'points' && window.pdl1Viewer.drawnCounts.positive > 0")


def magnify(page, mag):
    page.locator(f"#mag-buttons button[data-mag='{mag}']").click()
    page.wait_for_function(f"document.getElementById('magnification').textContent === '{mag}×'")
    page.wait_for_function("(vp => Math.abs(vp.getZoom(true) - vp.getZoom(false)) < 1e-9)"
                           "(window.pdl1Viewer.viewer.viewport)")  # the zoom animation has ended
    ring = 7 / MPP * (mag * MPP / 10)  # a 7 µm ring at mag × MPP / 10 screen px per level-0 px
    if ring >= 4:
        page.wait_for_function(f"window.pdl1Viewer.drawnCounts.markerStyle === 'ring' && "
                               f"Math.abs(window.pdl1Viewer.drawnCounts.markerRadius - {ring}) < 0.01")
    else:  # too small to ring a nucleus: small filled marks
        page.wait_for_function("window.pdl1Viewer.drawnCounts.markerStyle === 'filled'")


def key(page, name):
    page.locator("#osd .openseadragon-canvas").first.focus()
    page.keyboard.press(name)


# The overlay pixel (RGBA) at a platform point (pixel i's centre at i; OpenSeadragon puts it at i + 0.5)
# offset by (dx, dy) screen px.
OVERLAY_AT = """([x, y, dx, dy, clear]) => {
  const v = window.pdl1Viewer, vp = v.viewer.viewport, dpr = window.devicePixelRatio || 1;
  const p = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(x + 0.5, y + 0.5));
  const c = document.querySelector('canvas.pdl1-overlay');
  const d = c.getContext('2d').getImageData(Math.round((p.x + dx) * dpr), Math.round((p.y + dy) * dpr), 1, 1).data;
  return Array.from(d);
}"""

ISOLATED_POINT = """([label, clear]) => {
  // A loaded point of `label` in view with no other point within `clear` screen px.
  const v = window.pdl1Viewer, vp = v.viewer.viewport, rect = v.viewer.canvas.getBoundingClientRect();
  const pts = v.points();
  const screen = pts.map(p => vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(p.x + 0.5, p.y + 0.5)));
  for (let i = 0; i < pts.length; i++) {
    const s = screen[i];
    if (pts[i].label !== label || pts[i].corrected || s.x < 80 || s.y < 160 || s.x > rect.width - 80 || s.y > rect.height - 80) continue;
    if (screen.every((o, j) => j === i || Math.hypot(o.x - s.x, o.y - s.y) > clear)) {
      return {x: pts[i].x, y: pts[i].y, id: pts[i].id, pageX: rect.left + s.x, pageY: rect.top + s.y};
    }
  }
  return null;
}"""


def test_tools_in_view_markers_scale_and_undo_redo_corrections(page, site):
    open_sparse(page, site)
    # On a 900-px-tall screen every correction tool is over the slide, in view without scrolling.
    osd = page.locator("#osd").bounding_box()
    for tool in ("#reclass-positive", "#reclass-negative", "#delete-detection", "#add-mode", "#undo", "#redo",
                 "#draw-region", "#ruler", "#mag-buttons button[data-mag='20']"):
        box = page.locator(tool).bounding_box()
        assert box and box["y"] >= osd["y"] and box["y"] + box["height"] <= min(900, osd["y"] + osd["height"]), tool
        assert osd["x"] <= box["x"] and box["x"] + box["width"] <= osd["x"] + osd["width"], tool
    assert page.locator("#undo").is_disabled() and page.locator("#redo").is_disabled()

    # Markers are rings sized in µm (7 µm radius): twice the magnification, twice the ring.
    magnify(page, 10)
    assert page.evaluate("window.pdl1Viewer.drawnCounts.markerStyle") == "ring"
    magnify(page, 20)
    counts = page.evaluate("window.pdl1Viewer.drawnCounts")
    assert counts["markerStyle"] == "ring" and counts["markerRadius"] == pytest.approx(14, abs=0.01)
    r = counts["markerRadius"]
    target = page.evaluate(ISOLATED_POINT, [1, 3 * r])
    assert target is not None
    centre = page.evaluate(OVERLAY_AT, [target["x"], target["y"], 0, 0, 0])
    on_ring = page.evaluate(OVERLAY_AT, [target["x"], target["y"], r * 0.7071, -r * 0.7071, 0])
    assert centre[3] == 0, centre  # the nucleus under the marker stays visible
    assert on_ring[3] > 128 and on_ring[0] > 180 and on_ring[1] < 90, on_ring  # the ring, in the positive red
    shot(page, "1-rings-20x")

    # Reclassify it with the floating tool: it is drawn as a (corrected) diamond, TPS moves.
    version = page.evaluate("window.pdl1Viewer.correctionsVersion")
    tps_before = page.locator("#tps").inner_text()
    page.mouse.click(target["pageX"], target["pageY"])
    page.wait_for_function(f"window.pdl1Viewer.selected && String(window.pdl1Viewer.selected.id) === '{target['id']}'")
    page.locator("#reclass-negative").click()
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 1}")
    page.wait_for_function(f"document.getElementById('tps').textContent !== {tps_before!r}")
    tps_corrected = page.locator("#tps").inner_text()
    page.keyboard.press("Escape")  # deselect: no selection ring over the marker
    page.wait_for_function("window.pdl1Viewer.drawnCounts.corrected === 1")
    diagonal = page.evaluate(OVERLAY_AT, [target["x"], target["y"], r * 0.7071, -r * 0.7071, 0])
    tip = page.evaluate(OVERLAY_AT, [target["x"], target["y"], r - 1, 0, 0])
    assert diagonal[3] < 64, diagonal  # a diamond has no stroke where the ring was
    assert tip[3] > 128 and tip[0] > 200 and tip[1] > 150 and tip[2] < 90, tip  # its tip, in the negative yellow
    assert page.evaluate(OVERLAY_AT, [target["x"], target["y"], 0, 0, 0])[3] == 0
    shot(page, "2-corrected-diamond")

    # Ctrl+Z undoes it (an undo correction: version + 1), Ctrl+Shift+Z redoes it, Ctrl+Y after another undo.
    assert page.locator("#undo").is_enabled()
    key(page, "Control+z")
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 2}")
    page.wait_for_function(f"document.getElementById('tps').textContent === {tps_before!r}")
    page.wait_for_function("window.pdl1Viewer.drawnCounts.corrected === 0")
    assert page.locator("#redo").is_enabled()
    key(page, "Control+Shift+z")
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 3}")
    page.wait_for_function(f"document.getElementById('tps').textContent === {tps_corrected!r}")
    page.wait_for_function("window.pdl1Viewer.drawnCounts.corrected === 1")
    key(page, "Control+z")
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 4}")
    key(page, "Control+y")
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 5}")
    page.wait_for_function(f"document.getElementById('tps').textContent === {tps_corrected!r}")
    # An added point, undone: gone from the counts.
    positive = page.locator("#count-positive").inner_text()
    key(page, "m")
    box = page.locator("#osd").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2 + 31, box["y"] + box["height"] / 2 + 17)
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 6}")
    page.wait_for_function(f"document.getElementById('count-positive').textContent !== {positive!r}")
    key(page, "m")
    key(page, "Control+z")
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 7}")
    page.wait_for_function(f"document.getElementById('count-positive').textContent === {positive!r}")
    assert page.evaluate("window.pdl1Viewer.history") == {"undo": 1, "redo": 1, "busy": False}


def test_region_undo_vertex_edit_ruler_and_magnification(page, site):
    open_sparse(page, site)
    magnify(page, 5)
    # 40× (0.25 µm per screen px) is within the zoom limit of a 0.5 µm/px scan (to about 80×).
    assert page.locator("#mag-buttons button[data-mag='40']").is_enabled()
    magnify(page, 20)
    version = page.evaluate("window.pdl1Viewer.correctionsVersion")
    before = page.locator("#tps").inner_text(), page.locator("#count-negative").inner_text()
    draw_square_region(page, "tumour", fraction=0.2)
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 1}")
    page.wait_for_function("window.pdl1Viewer.regions.length === 1")
    region = page.evaluate("window.pdl1Viewer.regions[0]")
    facts = page.locator("#region-list .region-facts").inner_text()
    # Its area in mm², from the polygon and the slide's µm/px.
    v = region["vertices"]
    twice = sum(v[i][0] * v[i - 1][1] - v[i - 1][0] * v[i][1] for i in range(len(v)))
    area = abs(twice) / 2 * MPP * MPP / 1e6
    assert area < 0.1 and f"{area:.4f} mm²" in facts, (facts, area)
    # Its counts and TPS: the only (include) region, so the panel's scores are the region's cells.
    page.wait_for_function("document.querySelector('#region-list .region-facts').textContent.includes('positive')")
    facts = page.locator("#region-list .region-facts").inner_text()
    pos, neg = (int(page.locator(f"#count-{k}").inner_text().replace(",", "")) for k in ("positive", "negative"))
    assert pos + neg > 0 and f"{pos} positive, {neg} negative" in facts, (facts, pos, neg)
    from analysis.scoring import stated_pct, tps

    assert f"TPS {stated_pct(tps(pos, neg)):.2f} %" in facts, (facts, pos, neg)  # as the report states it

    # Undo / redo a drawn region.
    key(page, "Control+z")
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 2}")
    page.wait_for_function("window.pdl1Viewer.regions.length === 0")
    assert (page.locator("#tps").inner_text(), page.locator("#count-negative").inner_text()) == before
    key(page, "Control+y")
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 3}")
    page.wait_for_function("window.pdl1Viewer.regions.length === 1")
    restored = page.evaluate("window.pdl1Viewer.regions[0]")
    assert restored["vertices"] == region["vertices"] and restored["id"] != region["id"]

    # Edit its vertices: drag the first one 60 screen px outwards; Enter saves (a new region replaces it).
    page.locator("#region-list .region-edit").click()
    page.wait_for_function("window.pdl1Viewer.editing !== null")
    first = page.evaluate("""(v) => {
        const vp = window.pdl1Viewer.viewer.viewport, rect = window.pdl1Viewer.viewer.canvas.getBoundingClientRect();
        const p = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(v[0] + 0.5, v[1] + 0.5));
        return {x: rect.left + p.x, y: rect.top + p.y};
    }""", restored["vertices"][0])
    page.mouse.move(first["x"], first["y"])
    page.mouse.down()
    for step in range(1, 7):
        page.mouse.move(first["x"] - 10 * step, first["y"] - 10 * step)
    page.mouse.up()
    shot(page, "3-editing-vertices")
    key(page, "Enter")
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 4}")  # one save replaces it
    # The list reloads after the save: wait for the new region, not the old one still listed.
    page.wait_for_function(f"window.pdl1Viewer.regions.length === 1 && window.pdl1Viewer.regions[0].id !== {restored['id']}")
    edited = page.evaluate("window.pdl1Viewer.regions[0]")
    moved = [edited["vertices"][0][i] - restored["vertices"][0][i] for i in (0, 1)]
    zoom = 20 * MPP / 10  # screen px per level-0 px at 20×
    assert edited["vertices"][1:] == restored["vertices"][1:]
    assert moved == [pytest.approx(-60 / zoom, abs=3)] * 2, moved
    key(page, "Control+z")  # the previous vertices back, again in one save
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 5}")
    page.wait_for_function(f"window.pdl1Viewer.regions.length === 1 && window.pdl1Viewer.regions[0].id !== {edited['id']}")
    assert page.evaluate("window.pdl1Viewer.regions[0].vertices") == restored["vertices"]

    # The ruler at 20× (1 screen px = 0.5 µm): 200 px apart is 100 µm.
    key(page, "l")
    box = page.locator("#osd").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 + 100
    page.mouse.click(cx - 100, cy)
    time.sleep(0.3)
    page.mouse.click(cx + 100, cy)
    page.wait_for_function("window.pdl1Viewer.ruler !== null")
    ruler = page.evaluate("window.pdl1Viewer.ruler")
    assert ruler["um"] == pytest.approx(100, abs=0.5), ruler
    assert page.locator("#tool-status").inner_text() == f"Distance: {ruler['um']:.1f} µm"
    shot(page, "4-ruler")
    key(page, "Escape")
    assert page.evaluate("window.pdl1Viewer.ruler") is None
