"""Saving on the point-annotation page when the network or the annotator does the unexpected.

A save whose answer is lost (the server applied it), a point dragged onto another, a page hidden or left with
a set too large for a keepalive request. Headless Chromium (Playwright) against a live site with the setup of
tests/annotations/browser_setup.py, as tests/annotations/test_browser.py.
"""

import pytest

from tests.viewer.browser import CHROMIUM, chromium_browser, logged_in_page, site_fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

TIMEOUT_MS = 20_000

site = site_fixture("tests.annotations.browser_setup", "annotate-saving")


@pytest.fixture(scope="module")
def browser(site):
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def annotator_page(browser, site):
    # no screenshot afterwards: a test closes its page
    with logged_in_page(browser, site.url, "annotator", width=1280, height=900, timeout_ms=TIMEOUT_MS) as page:
        yield page


def open_session(page, site, key):
    page.goto(f"{site.url}/annotate/sessions/{site.data['sessions'][key]}/")
    page.wait_for_function("window.pdl1Annotate && window.pdl1Annotate.ready && window.pdl1Annotate.tilesLoaded >= 1")


def at(page, x, y):
    p = page.evaluate("([x, y]) => window.pdl1Annotate.toScreen(x, y)", [x, y])
    return p["x"], p["y"]


def click_image(page, x, y):
    page.mouse.click(*at(page, x, y))


def page_points(page):
    return sorted(page.evaluate("window.pdl1Annotate.points.map(p => [p.x, p.y, p.label])"))


def settled(page):
    """No save pending or in flight."""
    page.wait_for_function("() => { const s = window.pdl1Annotate; return !s.dirty && !s.saving; }")


def server(page, site, key):
    r = page.request.get(f"{site.url}/api/annotation/sessions/{site.data['sessions'][key]}/points/")
    assert r.ok, r.status
    body = r.json()
    return body["version"], sorted([p["x"], p["y"], p["label"]] for p in body["points"])


def no_conflict(page):
    assert page.evaluate("window.pdl1Annotate.conflict") is None
    assert page.is_hidden("#conflict")
    assert page.evaluate("window.pdl1Annotate.saveState") == "saved", page.inner_text("#save-state")


def lose_first_answer(page, also_fail_check=False):
    """The first PUT reaches the server (which saves it) but its answer never reaches the page; with
    `also_fail_check`, the page's next GET of the points fails too. Returns the server's status for that PUT
    (once given) and the failed GETs."""
    given, failed_get = [], []

    def handle(route):
        if route.request.method == "PUT" and not given:
            given.append(route.fetch().status)
            route.abort()
        elif route.request.method == "GET" and given and also_fail_check and not failed_get:
            failed_get.append(True)
            route.abort()
        else:
            route.continue_()

    page.route("**/points/", handle)
    return given, failed_get


def wait_until(page, condition, timeout_s=20):
    """Let the page run (and Playwright's route handlers with it) until `condition()` holds."""
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError("timed out")


def test_a_save_whose_answer_was_lost_is_the_pages_own_not_a_conflict(annotator_page, site):
    """The reviewer's case: the first save is applied but its answer is lost. The page finds its own set saved,
    takes the server's version and goes on; the point placed afterwards is saved on top, no conflict shown."""
    page, key = annotator_page, "lost"
    open_session(page, site, key)
    given, _ = lose_first_answer(page)
    click_image(page, 400, 400)
    page.wait_for_function("() => window.pdl1Annotate.saves === 0 && window.pdl1Annotate.version === 1")
    assert given == [200]
    settled(page)
    click_image(page, 500, 500)
    settled(page)
    no_conflict(page)
    assert server(page, site, key) == (2, page_points(page)) and len(page_points(page)) == 2


def test_a_retry_answered_409_after_a_lost_answer_is_reconciled(annotator_page, site):
    """The answer is lost and the check of the saved points fails as well (still offline), and the annotator
    keeps editing: the retry, on the old version, gets 409. The saved set is one this page sent, so the page
    takes its version and sends the newer set on it; only another set would be a conflict."""
    page, key = annotator_page, "lost_other"
    open_session(page, site, key)
    given, failed_get = lose_first_answer(page, also_fail_check=True)
    click_image(page, 400, 400)
    wait_until(page, lambda: failed_get)
    assert given == [200] and page.evaluate("window.pdl1Annotate.version") == 0
    click_image(page, 500, 500)
    click_image(page, 600, 400)
    settled(page)
    no_conflict(page)
    version, points = server(page, site, key)
    assert points == page_points(page) and len(points) == 3 and version == page.evaluate("window.pdl1Annotate.version")
    # another page's save is still a conflict
    other = page.context.new_page()
    open_session(other, site, key)
    click_image(other, 450, 600)
    settled(other)
    click_image(page, 650, 650)
    page.wait_for_function("window.pdl1Annotate.saveState === 'conflict'")
    assert "changed elsewhere" in page.inner_text("#conflict")
    assert len(server(page, site, key)[1]) == 4
    other.close()


def zoom_on(page, x, y, pixel_ratio):
    page.evaluate("""([x, y, z]) => { const vp = window.pdl1Annotate.viewer.viewport;
      vp.zoomTo(vp.imageToViewportZoom(z), null, true);
      vp.panTo(vp.imageToViewportCoordinates(x, y), true); }""", [x, y, pixel_ratio])
    page.wait_for_timeout(300)


def test_a_point_dragged_onto_another_stops_short_and_the_set_still_saves(annotator_page, site):
    """The server refuses a set with two points within 1.5 µm (one nucleus twice), and every later save with it.
    A point dragged onto another stops where it was last allowed, the page says why, and the set saves."""
    page, key = annotator_page, "drag"
    open_session(page, site, key)
    zoom_on(page, 410, 400, 6)
    click_image(page, 400, 400)
    click_image(page, 420, 400)
    settled(page)
    page.mouse.move(*at(page, 420, 400))
    page.mouse.down()
    page.mouse.move(*at(page, 401, 400), steps=8)
    page.mouse.up()
    assert "within 1.5 µm" in page.inner_text("#save-state")
    a, b = page.evaluate("window.pdl1Annotate.points.map(p => [p.x, p.y])")
    min_px = page.evaluate("JSON.parse(document.getElementById('annotate-config').textContent).min_point_px")
    assert a == [400, 400] and ((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2) ** 0.5 >= min_px and b[0] < 410, b
    page.wait_for_function("() => { const s = window.pdl1Annotate; return !s.saving && (s.error || !s.dirty); }")
    assert page.evaluate("window.pdl1Annotate.error") is None, page.inner_text("#annotate-error")
    click_image(page, 450, 450)   # later edits save
    settled(page)
    no_conflict(page)
    assert server(page, site, key)[1] == page_points(page) and len(page_points(page)) == 3


RECORD_FETCHES = """() => { window.__fetches = []; const f = window.fetch;
  window.fetch = (url, init) => { window.__fetches.push({method: (init && init.method) || 'GET',
    keepalive: !!(init && init.keepalive), size: init && init.body ? new Blob([init.body]).size : 0});
    return f(url, init); }; }"""

HIDE = """() => { Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
  const started = !!window.pdl1Annotate.saving;
  delete document.visibilityState;
  return started; }"""


def test_a_hidden_page_saves_at_once(annotator_page, site):
    """Hidden (another tab, or the first step of closing) the page saves now, not after the autosave delay that
    a hidden page's timers may stretch; a small set's request may outlive the page (keepalive)."""
    page, key = annotator_page, "hidden"
    open_session(page, site, key)
    page.evaluate(RECORD_FETCHES)
    click_image(page, 420, 430)
    assert page.evaluate(HIDE) is True
    settled(page)
    assert page.evaluate("window.__fetches.filter(f => f.method === 'PUT').map(f => f.keepalive)") == [True]
    assert server(page, site, key)[1] == page_points(page) and len(page_points(page)) == 1


def test_leaving_with_a_set_too_large_for_keepalive_asks_and_sends_no_keepalive(annotator_page, site):
    """2,000 points are about 72 KiB of JSON: browsers refuse a keepalive body over 64 KiB with a TypeError. The
    page sends such a set as an ordinary request when hidden and no keepalive on pagehide (and no error), and
    leaving while it is unsaved asks first."""
    page, key = annotator_page, "big_leave"
    open_session(page, site, key)
    grid = [[260 + 10 * i, 260 + 10 * j, "positive"] for i in range(50) for j in range(40)]
    status = page.evaluate("""async ([url, points]) => {
      const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
      const r = await fetch(url, {method: 'PUT', credentials: 'same-origin', body: JSON.stringify({version: 0,
        points: points.map(p => ({x: p[0], y: p[1], label: p[2]}))}),
        headers: {'Content-Type': 'application/json', 'X-CSRFToken': token}});
      return r.status; }""", [f"{site.url}/api/annotation/sessions/{site.data['sessions'][key]}/points/", grid])
    assert status == 200
    page.reload()
    page.wait_for_function("window.pdl1Annotate && window.pdl1Annotate.ready && window.pdl1Annotate.points.length === 2000")
    page.evaluate(RECORD_FETCHES)
    page.route("**/points/", lambda route: route.abort() if route.request.method == "PUT" else route.continue_())
    click_image(page, 500, 720)   # below the grid; unsaved: its saves fail
    page.wait_for_function("() => { const s = window.pdl1Annotate; return s.dirty && !s.saving && s.saves === 0 && window.__fetches.length > 0; }")
    page.evaluate(HIDE)   # hidden: saved at once, as an ordinary request (keepalive would be refused)
    page.wait_for_function("() => { const s = window.pdl1Annotate; return s.dirty && !s.saving; }")
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pagehide', {persisted: false}))")
    page.wait_for_timeout(300)
    puts = page.evaluate("window.__fetches.filter(f => f.method === 'PUT')")
    assert len(puts) >= 2 and all(f["size"] > 64 * 1024 and not f["keepalive"] for f in puts), puts
    asked = []
    page.on("dialog", lambda dialog: (asked.append(dialog.type), dialog.accept()))
    with page.expect_event("close"):   # closes once the question is answered
        page.close(run_before_unload=True)
    assert asked == ["beforeunload"]
