"""The Analysis page follows a running job by itself (websocket, or polling in embedded mode) and the
case page shows the finished slide's status and TPS; its detector menu fits its card on a 1280 x 900
screen: headless Chromium against a live site."""

import json

import pytest

from tests.viewer.browser import CHROMIUM, LiveSite, chromium_browser, logged_in_page, running_site, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(LiveSite, tmp_path_factory.mktemp("analysis-page-site")) as live:
        yield live


# A socket that opens and says only what the test makes it say (window.fakeSocket.say(state)).
FAKE_SOCKET = """window.WebSocket = function (url) {
  var ws = this; window.fakeSocket = ws;
  ws.close = function () { ws.closed = true; }; ws.send = function () {};
  ws.say = function (state) { ws.onmessage({ data: JSON.stringify({ type: "progress", state: state }) }); };
  setTimeout(function () { ws.onopen && ws.onopen(); }, 50);
};"""


@pytest.mark.parametrize("socket_says_it", [True, False], ids=["socket-repeats-the-polled-state", "socket-silent"])
def test_the_watchdog_keeps_a_socket_that_repeats_what_the_poll_showed_first(site, request, socket_says_it):
    """Runs before the workers start (file order): the job stays queued on the server, and the page sees
    only the stubbed state endpoint and socket. A poll that shows a state first and the socket that
    repeats it a moment later is a working socket; one that never says it is a silent channel."""
    slide = site.data["dense"]["slide"]
    running = {"job": 0, "status": "running", "tiles_done": 4, "tiles_total": 40, "batches_done": 1}
    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist",
                                                       shot=request.node.name) as page:
        page.goto(f"{site.url}/slides/{slide}/analysis/")
        if not page.locator("tr[data-job][data-final='0']").count():
            with page.expect_navigation():
                page.locator("form.card button[type=submit]").click()
        job = int(page.locator("tr[data-job][data-final='0']").first.get_attribute("data-job"))
        polled = []

        def answer(route):
            polled.append(route.request.url)
            route.fulfill(status=200, content_type="application/json", body=json.dumps({**running, "job": job}))
        page.route("**/viewer/jobs/*/state/", answer)
        page.add_init_script(FAKE_SOCKET)
        page.reload()
        page.wait_for_function("window.pdl1Jobs.path === 'live' && window.pdl1Jobs.states.length > 0")
        assert page.evaluate("window.pdl1Jobs.states")[0][1:] == ["running", 4, 40, "poll"]
        if socket_says_it:
            page.evaluate("s => window.fakeSocket.say(s)", {**running, "job": job})
        page.wait_for_timeout(4500)  # past the watchdog's grace (WATCHDOG_MS) after the poll
        if socket_says_it:
            assert page.evaluate("[window.pdl1Jobs.path, window.pdl1Jobs.reason]") == ["live", ""]
        else:
            assert page.evaluate("[window.pdl1Jobs.path, window.pdl1Jobs.reason]") == ["polling", "live channel silent"]
        assert polled


def test_analysis_page_shows_live_progress_then_the_result(site, request):
    slide = site.data["fresh"]["slide"]
    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist",
                                                       shot=request.node.name) as page:
        page.goto(f"{site.url}/slides/{slide}/analysis/")
        with page.expect_navigation():
            page.locator("form.card button[type=submit]").click()  # Start analysis: no worker runs yet
        row = page.locator("tr[data-job]").first
        assert row.get_attribute("data-status") == "queued"
        page.wait_for_function("window.pdl1Jobs && window.pdl1Jobs.path !== null")
        path = page.evaluate("window.pdl1Jobs.path")
        assert path in ("live", "polling") and path in page.locator("#jobs-progress-path").text_content()
        site.start_workers()
        # Nobody reloads: the page follows the job and, once it is done, shows the server's result.
        page.wait_for_function(
            "() => { const r = document.querySelector('tr[data-job]');"
            " return r && r.dataset.final === '1' && r.dataset.status === 'done'; }", timeout=120_000)
        assert page.evaluate("performance.getEntriesByType('navigation')[0].type") == "reload"
        seen = page.evaluate("window.pdl1Jobs.previous")  # what the page saw before it reloaded itself
        statuses = [s[1] for s in seen["states"]]
        assert statuses[-1] == "done" and "queued" in statuses, seen
        if site.live_channel:  # Redis carries the workers' events to the page's websocket
            assert seen["path"] == "live" and any(s[4] == "ws" and s[1] != "queued" for s in seen["states"]), seen
        else:  # embedded: the in-process channel cannot carry them; the watchdog switched to polling
            assert seen["path"] == "polling" and seen["reason"] == "live channel silent", seen
        assert page.locator("tr[data-job] td.before-review").first.text_content().strip().isdigit()
        case = page.locator("p.actions a[href^='/cases/']").first.get_attribute("href")
        page.goto(site.url + case)
        card = page.locator(f".slide[data-slide='{slide}']")
        assert "Done" in card.locator(".job-status").text_content()
        assert "TPS" in card.locator(".slide-tps").text_content()


# Whether the selected option's text fits in the menu (text measured in the menu's own font).
TEXT_FITS = """m => { const c = document.createElement('canvas').getContext('2d');
  c.font = getComputedStyle(m).font;
  return c.measureText(m.selectedOptions[0].text).width < m.clientWidth; }"""


def inside(inner: dict, outer: dict) -> bool:
    return (inner["x"] >= outer["x"] and inner["y"] >= outer["y"]
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5)


def test_the_detector_menu_fits_its_card_on_a_1280_by_900_screen(site, request):
    slide = site.data["dense"]["slide"]
    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist", width=1280, height=900,
                                                       shot=request.node.name) as page:
        page.goto(f"{site.url}/slides/{slide}/analysis/")
        card, menu = page.locator("form#start-analysis"), page.locator("form#start-analysis select[name=detector]")
        button = card.locator("button[type=submit]")
        # The real menu: its default option's label reads in full, the menu and the button lie in the card,
        # and the card in the page's width and on the first screen.
        label = menu.locator("option:checked").inner_text()
        assert label.endswith(" - default"), label
        assert menu.evaluate(TEXT_FITS), "the default option's label is cut"
        for box in (menu.bounding_box(), button.bounding_box()):
            assert inside(box, card.bounding_box()), (box, card.bounding_box())
        assert inside(card.bounding_box(), {"x": 0, "y": 0, "width": 1280, "height": 900}), card.bounding_box()
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        screenshot(page, f"{request.node.name}-real-menu")
        # A model whose label is longer than the page is wide (names are free text): cut, never spilling out.
        menu.evaluate("m => m.add(new Option('research-free-text-name '.repeat(12) + '(fcn_resnet18, sha256 0)', 'x'))")
        menu.select_option("x")
        box, outer = menu.bounding_box(), card.bounding_box()
        assert inside(box, outer) and outer["x"] + outer["width"] <= 1280, (box, outer)
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_the_viewers_detector_menu_fits_its_panel(site, request):
    slide = site.data["dense"]["slide"]
    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist", width=1280, height=900,
                                                       shot=request.node.name) as page:
        page.goto(f"{site.url}/slides/{slide}/viewer/")
        page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")
        panel, menu = page.locator(".viewer-panel"), page.locator("#start-job #detector")
        assert menu.is_visible()
        for box in (menu.bounding_box(), page.locator("#start-job-button").bounding_box()):
            assert inside(box, panel.bounding_box()), (box, panel.bounding_box())
        assert panel.evaluate("p => p.scrollWidth <= p.clientWidth"), "the panel scrolls sideways"
