"""Where the annotation pages draw and read positions, against OpenSeadragon's own image coordinates.

The platform puts pixel i's centre at i (annotations.services, analysis); OpenSeadragon puts pixel i over
[i, i + 1). So a point stored at (450, 450) must be drawn at OpenSeadragon's (450.5, 450.5), a click there
must store (450, 450), and a field's outline must run on the tile pixels' edges. The screen positions here
come from OpenSeadragon (viewport.imageToViewerElementCoordinates), never from the page's overlay, which is
what is checked. Headless Chromium (Playwright) against a live site, as tests/annotations/test_browser.py.
"""

import time

import pytest

from tests.viewer.browser import CHROMIUM, chromium_browser, logged_in_page, screenshot, site_fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

TIMEOUT_MS = 20_000
FIELD = (256, 256, 512, 512)  # tests.annotations.browser_setup

site = site_fixture("tests.annotations.browser_setup", "annotate-pixels")


@pytest.fixture(scope="module")
def browser(site):
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def annotator_page(browser, site, request):
    with logged_in_page(browser, site.url, "annotator", shot=f"annotate-{request.node.name}", width=1280,
                        height=900, timeout_ms=TIMEOUT_MS) as page:
        yield page


@pytest.fixture
def pathologist_page(browser, site, request):
    with logged_in_page(browser, site.url, "pathologist", shot=f"annotate-{request.node.name}", width=1400,
                        height=900, timeout_ms=TIMEOUT_MS) as page:
        yield page


def osd_page_point(page, state, x, y):
    """Page coordinates of OpenSeadragon image point (x, y), by OpenSeadragon's own conversion."""
    return tuple(page.evaluate("""([key, x, y]) => { const v = window[key].viewer, r = v.canvas.getBoundingClientRect();
      const p = v.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
      return [r.left + p.x, r.top + p.y]; }""", [state, x, y]))


def overlay_page_point(page, state, x, y):
    """Page coordinates where the page's overlay draws platform point (x, y)."""
    p = page.evaluate("([key, x, y]) => window[key].toScreen(x, y)", [state, x, y])
    return p["x"], p["y"]


def zoom_on(page, state, x, y, pixel_ratio, degrees=0):
    """Centre OpenSeadragon image point (x, y) at `pixel_ratio` screen px per image px, rotated `degrees`."""
    page.evaluate("""([key, x, y, z, deg]) => { const vp = window[key].viewer.viewport;
      vp.setRotation(deg, true);
      vp.zoomTo(vp.imageToViewportZoom(z), null, true);
      vp.panTo(vp.imageToViewportCoordinates(x, y), true); }""", [state, x, y, pixel_ratio, degrees])
    page.wait_for_timeout(300)


def open_session(page, site, key):
    page.goto(f"{site.url}/annotate/sessions/{site.data['sessions'][key]}/")
    page.wait_for_function("window.pdl1Annotate && window.pdl1Annotate.ready && window.pdl1Annotate.tilesLoaded >= 1")


def points(page):
    return page.evaluate("window.pdl1Annotate.points.map(p => [p.x, p.y, p.label])")


def saved_points(page, site, key):
    page.wait_for_function("() => { const s = window.pdl1Annotate; return !s.dirty && !s.saving && s.saveState === 'saved'; }")
    r = page.request.get(f"{site.url}/api/annotation/sessions/{site.data['sessions'][key]}/points/")
    assert r.ok, r.status
    return [[p["x"], p["y"], p["label"]] for p in r.json()["points"]]


def close(a, b, tol):
    return all(abs(u - v) <= tol for u, v in zip(a, b))


@pytest.mark.parametrize("degrees", [0, 90])
def test_a_click_on_a_pixel_stores_that_pixels_centre_and_its_marker_is_drawn_over_it(annotator_page, site, degrees):
    """At 16 screen px per image px: a click on the middle of pixel (450, 450) as OpenSeadragon shows it stores
    (450, 450); the marker of a stored point is drawn on its pixel's middle; the field's outline runs on the outer
    edges of its border pixels. Also with the viewport rotated by 90° (a scale read off the x axis was 0 there)."""
    page, key = annotator_page, "pixel_rotated" if degrees else "pixel"
    open_session(page, site, key)
    zoom_on(page, "pdl1Annotate", 450.5, 450.5, 16, degrees)
    assert page.evaluate("window.pdl1Annotate.viewer.viewport.getRotation()") == degrees
    page.mouse.click(*osd_page_point(page, "pdl1Annotate", 450.5, 450.5))
    (placed,) = points(page)
    assert close(placed[:2], (450, 450), 0.05), placed
    # the marker is drawn where OpenSeadragon shows that pixel's middle
    assert close(overlay_page_point(page, "pdl1Annotate", 450, 450),
                 osd_page_point(page, "pdl1Annotate", 450.5, 450.5), 0.01)
    # pixel 454, OpenSeadragon's [454, 455), spans [453.5, 454.5) in platform coordinates: a click near its
    # right edge is stored inside it, not half a pixel on in pixel 455
    page.mouse.click(*osd_page_point(page, "pdl1Annotate", 454.9, 450.5))
    assert close(points(page)[1][:2], (454.4, 450), 0.05), points(page)
    assert saved_points(page, site, key) == points(page)
    # the field's outline runs on the outer edges of its corner pixels (256, 256) and (767, 767)
    fx, fy, fw, fh = FIELD
    zoom_on(page, "pdl1Annotate", fx, fy, 16, degrees)
    assert close(overlay_page_point(page, "pdl1Annotate", fx - 0.5, fy - 0.5),
                 osd_page_point(page, "pdl1Annotate", fx, fy), 0.01)
    assert close(overlay_page_point(page, "pdl1Annotate", fx + fw - 0.5, fy + fh - 0.5),
                 osd_page_point(page, "pdl1Annotate", fx + fw, fy + fh), 0.01)


def test_a_click_just_outside_the_field_places_nothing_one_just_inside_places_a_point(annotator_page, site):
    """The field's first pixel column is 256: pixel 255, beside it, is outside even where it touches the edge."""
    page = annotator_page
    open_session(page, site, "pixel_edge")
    zoom_on(page, "pdl1Annotate", 256, 300, 16)
    page.mouse.click(*osd_page_point(page, "pdl1Annotate", 255.85, 300.5))   # pixel 255, outside
    assert points(page) == []
    assert "Outside the field" in page.inner_text("#save-state")
    page.mouse.click(*osd_page_point(page, "pdl1Annotate", 256.15, 300.5))   # pixel 256, inside
    (placed,) = points(page)
    assert close(placed[:2], (255.7, 300), 0.05), placed


def test_rotate_and_mirror_keys_leave_the_points_over_their_nuclei(annotator_page, site):
    """OpenSeadragon's "r"/"R" (rotate) and "f" (mirror) keys are off on the annotation page, on the viewer and on
    its navigator; a mirror set by a script is undone by the overlay. The points stay over their pixels."""
    page, key = annotator_page, "keys"
    open_session(page, site, key)
    # no other way in: no rotate or mirror buttons, no two-finger rotation, no initial rotation or mirror
    assert page.evaluate("""() => { const v = window.pdl1Annotate.viewer;
      return [v.gestureSettingsMouse, v.gestureSettingsTouch, v.gestureSettingsPen, v.gestureSettingsUnknown]
        .map(g => !!g.pinchRotate).concat([!!v.showRotationControl, !!v.showFlipControl, v.viewport.getRotation(),
                                           v.viewport.getFlip()]); }""") == [False] * 6 + [0, False]
    for x, y in ((400, 400), (600, 500)):
        page.mouse.click(*osd_page_point(page, "pdl1Annotate", x + 0.5, y + 0.5))
    assert [p[:2] for p in points(page)] == [[400, 400], [600, 500]]
    page.locator("#osd .openseadragon-canvas").first.focus()
    for k in ("r", "R", "f", "F", "r"):
        page.keyboard.press(k)
    page.locator("#osd .navigator").first.click()   # the navigator is a viewer of its own
    for k in ("r", "f"):
        page.keyboard.press(k)
    page.wait_for_timeout(500)
    view = page.evaluate("""() => { const vp = window.pdl1Annotate.viewer.viewport;
      return [vp.getRotation(), vp.getFlip()]; }""")
    assert view == [0, False]
    page.evaluate("window.pdl1Annotate.viewer.viewport.setFlip(true)")
    assert page.evaluate("window.pdl1Annotate.viewer.viewport.getFlip()") is False
    for x, y in ((400, 400), (600, 500)):
        assert close(overlay_page_point(page, "pdl1Annotate", x, y),
                     osd_page_point(page, "pdl1Annotate", x + 0.5, y + 0.5), 0.01)
    assert len(saved_points(page, site, key)) == 2


def test_a_drawn_field_holds_exactly_the_pixels_dragged_over(pathologist_page, site):
    """Dragging from the top-left part of pixel (100, 120) to the bottom-right part of pixel (399, 319) draws the
    field (100, 120, 300, 200): both corner pixels in, none beyond; two clicked corners give the same. The outline
    runs on the tile pixels' edges."""
    page = pathologist_page
    page.goto(f"{site.url}/annotate/projects/{site.data['draw_project']}/fields/draw/?slide={site.data['pseudo_id']}")
    page.wait_for_function("window.pdl1DrawField && window.pdl1DrawField.ready && window.pdl1DrawField.tilesLoaded >= 1")
    # 450 x 300 screen px: in the view, clear of the navigator (bottom right)
    zoom_on(page, "pdl1DrawField", 250, 220, 1.5)
    page.mouse.move(*osd_page_point(page, "pdl1DrawField", 100.35, 120.35))
    page.mouse.down()
    page.mouse.move(*osd_page_point(page, "pdl1DrawField", 250, 220), steps=5)
    page.mouse.move(*osd_page_point(page, "pdl1DrawField", 399.65, 319.65), steps=5)
    page.mouse.up()
    assert page.evaluate("window.pdl1DrawField.rect") == [100, 120, 300, 200]
    assert close(overlay_page_point(page, "pdl1DrawField", 99.5, 119.5), osd_page_point(page, "pdl1DrawField", 100, 120),
                 0.01)
    assert close(overlay_page_point(page, "pdl1DrawField", 399.5, 319.5),
                 osd_page_point(page, "pdl1DrawField", 400, 320), 0.01)
    page.click("#clear-rect")
    page.mouse.click(*osd_page_point(page, "pdl1DrawField", 399.65, 319.65))
    time.sleep(0.4)  # two clicks, not a double-click
    page.mouse.click(*osd_page_point(page, "pdl1DrawField", 100.35, 120.35))
    assert page.evaluate("window.pdl1DrawField.rect") == [100, 120, 300, 200]
    # one pixel clicked twice is a 1 x 1 field
    page.mouse.click(*osd_page_point(page, "pdl1DrawField", 200.2, 200.8))
    time.sleep(0.4)
    page.mouse.click(*osd_page_point(page, "pdl1DrawField", 200.8, 200.2))
    assert page.evaluate("window.pdl1DrawField.rect") == [200, 200, 1, 1]
    screenshot(page, "annotate-draw-pixels")
