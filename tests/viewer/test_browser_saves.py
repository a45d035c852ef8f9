"""The viewer's saves and unsaved work, in real headless Chromium against a live site:

- two corrections made back to back, the first one's answer delayed (Playwright page.route): both are saved,
  one after the other, with no conflict (the second used to carry the first one's base version and was
  refused as "corrected by pathologist … since you loaded it", naming the user themself);
- leaving the page asks first (beforeunload) while a region is being drawn, vertices were moved and not saved,
  or a save is still unanswered, and only then;
- a colleague's save before this page's first one (409): the saves queued behind it are not sent (each used to be
  sent and refused in turn), the conflict box says so once and lists them as not saved, and reloading lets the
  user go on."""

import time

import pytest

from tests.viewer.browser import (CHROMIUM, LiveSite, chromium_browser, draw_square_region, logged_in_page, login,
                                  running_site)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(LiveSite, tmp_path_factory.mktemp("browser-saves")) as live:
        yield live


@pytest.fixture
def page(site, request):
    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist", height=900,
                                                       shot=f"saves-{request.node.name}", timeout_ms=TIMEOUT_MS) as page:
        yield page


def open_sparse(page, site):
    page.goto(f"{site.url}/slides/{site.data['sparse']['slide']}/viewer/")
    page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")
    page.wait_for_function("window.pdl1Viewer.correctionsVersion !== null")
    page.wait_for_function("window.pdl1Viewer.mode === 'points' && window.pdl1Viewer.drawnCounts.positive > 0")


def key(page, name):
    page.locator("#osd .openseadragon-canvas").first.focus()
    page.keyboard.press(name)


def until(page, condition, timeout_s=10):
    """Wait for a Python-side condition (route handlers run while Playwright waits)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


# Page positions of loaded points of `label` in view, uncorrected, with no other point within `clear` screen px
# (platform coordinates: pixel i's centre at i, at i + 0.5 in OpenSeadragon's).
ISOLATED = """([label, clear]) => {
  const v = window.pdl1Viewer, vp = v.viewer.viewport, rect = v.viewer.canvas.getBoundingClientRect();
  const pts = v.points();
  const screen = pts.map(p => vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(p.x + 0.5, p.y + 0.5)));
  const out = [];
  pts.forEach((p, i) => {
    const s = screen[i];
    if (p.label !== label || p.corrected || s.x < 80 || s.y < 160 || s.x > rect.width - 80 || s.y > rect.height - 80) return;
    if (screen.every((o, j) => j === i || Math.hypot(o.x - s.x, o.y - s.y) > clear)) {
      out.push({id: p.id, pageX: rect.left + s.x, pageY: rect.top + s.y});
    }
  });
  return out;
}"""


def select(page, point):
    page.mouse.click(point["pageX"], point["pageY"])
    page.wait_for_function(f"window.pdl1Viewer.selected && String(window.pdl1Viewer.selected.id) === '{point['id']}'")


def test_two_corrections_back_to_back_both_land_without_a_conflict(page, site):
    job = site.data["sparse"]["job"]
    open_sparse(page, site)
    key(page, "Escape")
    radius = page.evaluate("window.pdl1Viewer.drawnCounts.markerRadius")
    positive = page.evaluate(ISOLATED, [1, 3 * radius + 12])
    negative = page.evaluate(ISOLATED, [2, 3 * radius + 12])
    assert positive and negative
    version = page.evaluate("window.pdl1Viewer.correctionsVersion")

    posts, held = [], []

    def hold_the_first(route):
        if route.request.method != "POST":
            route.continue_()
            return
        posts.append(route.request.post_data_json)
        if not held:  # the server saves it; its answer reaches the page only when the test lets it
            held.append((route, route.fetch()))
        else:
            route.continue_()

    page.route(f"**/api/viewer/jobs/{job}/corrections/", hold_the_first)
    select(page, positive[0])
    key(page, "x")  # delete it
    until(page, lambda: held)
    unsaved_while_out = page.evaluate("window.pdl1Viewer.hasUnsavedWork ? window.pdl1Viewer.hasUnsavedWork() : null")
    select(page, negative[0])
    key(page, "1")  # reclassify it as positive while the deletion's answer is still out
    page.wait_for_timeout(700)
    assert len(posts) == 1, posts  # the second waits for the first one's answer
    route, response = held[0]
    route.fulfill(response=response)
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 2}")
    assert [p["base_version"] for p in posts] == [version, version + 1], posts
    assert [p["op"] for p in posts] == ["delete", "reclassify"], posts
    assert page.locator("#conflict").is_hidden()
    page.wait_for_function("!window.pdl1Viewer.hasUnsavedWork()")
    assert page.evaluate("window.pdl1Viewer.history") == {"undo": 2, "redo": 0, "busy": False}
    items = page.evaluate(f"fetch('/api/viewer/jobs/{job}/corrections/').then(r => r.json())")["items"]
    done = {(i["op"], str(i["detection"])) for i in items if i["active"]}
    assert ("delete", str(positive[0]["id"])) in done and ("reclassify", str(negative[0]["id"])) in done, items
    assert unsaved_while_out is True  # a correction not yet answered is unsaved work (leaving asks first)


def colleague_deletes(page, site, job, version, detection):
    """The colleague deletes `detection` in a browser context of their own (the page does not see it)."""
    other = page.context.browser.new_context()
    try:
        login(other.new_page(), site.url, "colleague")
        token = next(c["value"] for c in other.cookies() if c["name"] == "csrftoken")
        reply = other.request.post(f"{site.url}/api/viewer/jobs/{job}/corrections/",
                                   data={"base_version": version, "op": "delete", "detection": detection},
                                   headers={"X-CSRFToken": token, "Referer": site.url + "/"})
        assert reply.status == 201, reply.text()
    finally:
        other.close()


def test_a_conflict_stops_the_saves_queued_behind_it(page, site):
    job = site.data["sparse"]["job"]
    open_sparse(page, site)
    key(page, "Escape")
    radius = page.evaluate("window.pdl1Viewer.drawnCounts.markerRadius")
    positive = page.evaluate(ISOLATED, [1, 3 * radius + 12])
    negative = page.evaluate(ISOLATED, [2, 3 * radius + 12])
    assert positive and negative
    ours = {str(positive[0]["id"]), str(negative[0]["id"])}
    theirs = next(p["id"] for p in page.evaluate("window.pdl1Viewer.points()")
                  if not p["corrected"] and str(p["id"]) not in ours)
    version = page.evaluate("window.pdl1Viewer.correctionsVersion")
    colleague_deletes(page, site, job, version, theirs)

    writes, held = [], []

    def hold_the_first(route):
        if route.request.method == "GET":
            route.continue_()
            return
        writes.append(route.request.url)
        if not held:  # refused by the server (the colleague's save); the page hears it when the test lets it
            held.append((route, route.fetch()))
        else:
            route.continue_()

    page.route(f"**/api/viewer/jobs/{job}/corrections/", hold_the_first)
    page.route(f"**/api/viewer/jobs/{job}/regions/", hold_the_first)
    select(page, positive[0])
    key(page, "x")  # delete it: sent, refused
    until(page, lambda: held)
    select(page, negative[0])
    key(page, "1")  # reclassify it as positive: queued behind
    draw_square_region(page, "tumour", fraction=0.2)  # queued behind too
    page.wait_for_function("window.pdl1Viewer.drawing === null")
    route, response = held[0]
    assert response.status == 409
    route.fulfill(response=response)

    page.wait_for_selector("#conflict", state="visible")
    page.wait_for_timeout(700)
    assert len(writes) == 1, writes  # the two behind it were not sent
    assert "colleague" in page.locator("#conflict-message").inner_text()
    assert page.locator("#conflict-not-saved-list li").all_inner_texts() == [
        f"the deletion of detection {positive[0]['id']} (refused)",
        f"the reclassification of detection {negative[0]['id']} as positive (not sent)",
        "the tumour region drawn (4 vertices) (not sent)",
    ]
    assert page.evaluate("window.pdl1Viewer.hasUnsavedWork()") is False
    assert page.evaluate("window.pdl1Viewer.history") == {"undo": 0, "redo": 0, "busy": False}
    assert page.evaluate("window.pdl1Viewer.regions.length") == 0

    page.locator("#conflict-reload").click()
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 1}")
    assert page.locator("#conflict").is_hidden() and page.evaluate("window.pdl1Viewer.notSaved") == []
    select(page, negative[0])
    key(page, "1")
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 2}")
    assert page.locator("#conflict").is_hidden() and len(writes) == 2


def try_to_leave(page, dialogs):
    """Start leaving the page; True when it asked first (the dialog is dismissed: the page stays)."""
    before = len(dialogs)
    page.evaluate("() => { window.location.href = '/'; }")
    deadline = time.monotonic() + 3
    while len(dialogs) == before and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    return len(dialogs) > before


def test_leaving_asks_only_while_work_is_unsaved(page, site):
    job = site.data["sparse"]["job"]
    open_sparse(page, site)
    dialogs = []

    def on_dialog(dialog):
        dialogs.append(dialog.type)
        dialog.dismiss()  # stay on the page

    page.on("dialog", on_dialog)
    assert page.evaluate("window.pdl1Viewer.hasUnsavedWork()") is False
    assert not page.evaluate("window.pdl1Viewer.unloadGuard")

    # A region being drawn: two vertices placed, not closed.
    page.locator("#draw-region").click()
    box = page.locator("#osd").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx in (-80, 80):
        page.mouse.click(cx + dx, cy)
        time.sleep(0.15)
    page.wait_for_function("window.pdl1Viewer.drawing && window.pdl1Viewer.drawing.vertices.length === 2")
    assert page.evaluate("window.pdl1Viewer.hasUnsavedWork()") is True
    assert try_to_leave(page, dialogs) and dialogs[-1] == "beforeunload"
    assert "/viewer/" in page.url and page.evaluate("window.pdl1Viewer.drawing.vertices.length") == 2
    key(page, "Escape")  # cancelled: nothing left to lose
    assert page.evaluate("window.pdl1Viewer.hasUnsavedWork()") is False

    # A vertex edit in progress: nothing to lose until a vertex moves.
    version = page.evaluate("window.pdl1Viewer.correctionsVersion")
    draw_square_region(page, "tumour", fraction=0.2)
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 1}")
    page.wait_for_function("window.pdl1Viewer.regions.length === 1 && !window.pdl1Viewer.hasUnsavedWork()")
    page.locator("#region-list .region-edit").click()
    page.wait_for_function("window.pdl1Viewer.editing !== null")
    assert page.evaluate("window.pdl1Viewer.hasUnsavedWork()") is False
    first = page.evaluate("""() => {
        const v = window.pdl1Viewer, vp = v.viewer.viewport, rect = v.viewer.canvas.getBoundingClientRect();
        const w = v.editing.vertices[0];
        const p = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(w[0] + 0.5, w[1] + 0.5));
        return {x: rect.left + p.x, y: rect.top + p.y};
    }""")
    page.mouse.move(first["x"], first["y"])
    page.mouse.down()
    for step in range(1, 5):
        page.mouse.move(first["x"] - 10 * step, first["y"] - 10 * step)
    page.mouse.up()
    assert page.evaluate("window.pdl1Viewer.hasUnsavedWork()") is True
    assert try_to_leave(page, dialogs) and dialogs[-1] == "beforeunload"
    assert page.evaluate("window.pdl1Viewer.editing !== null")

    # Its save while unanswered (Enter saves the edit; the answer is held back).
    held = []

    def hold(route):
        if route.request.method == "POST" and not held:
            held.append((route, route.fetch()))
        else:
            route.continue_()

    page.route(f"**/api/viewer/jobs/{job}/regions/", hold)
    key(page, "Enter")
    until(page, lambda: held)
    assert page.evaluate("window.pdl1Viewer.editing") is None
    assert page.evaluate("window.pdl1Viewer.hasUnsavedWork()") is True
    assert try_to_leave(page, dialogs) and dialogs[-1] == "beforeunload"
    route, response = held[0]
    route.fulfill(response=response)
    page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 2}")
    page.wait_for_function("!window.pdl1Viewer.hasUnsavedWork() && !window.pdl1Viewer.unloadGuard")

    # Nothing unsaved: the page leaves without asking.
    asked = len(dialogs)
    with page.expect_navigation():
        page.evaluate("() => { window.location.href = '/'; }")
    assert len(dialogs) == asked and "/viewer/" not in page.url
