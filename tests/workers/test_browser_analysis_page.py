"""The Analysis page follows a running job by itself (websocket, or polling in embedded mode) and the
case page shows the finished slide's status and TPS: headless Chromium against a live site."""

import pytest

from tests.viewer.browser import CHROMIUM, LiveSite, chromium_browser, logged_in_page, running_site

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(LiveSite, tmp_path_factory.mktemp("analysis-page-site")) as live:
        yield live


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
        assert "%" in page.locator("tr[data-job] td").nth(6).text_content()
        case = page.locator("p.actions a[href^='/cases/']").first.get_attribute("href")
        page.goto(site.url + case)
        card = page.locator(f".slide[data-slide='{slide}']")
        assert "Done" in card.locator(".job-status").text_content()
        assert "TPS" in card.locator(".slide-tps").text_content()
