"""The Analysis page stops following a job whose state endpoint answers 403 or 404 (headless Chromium against
a live site): asking again every few seconds would not change the answer, so it polls no more and the job's
row says why. The answers are made with Playwright's page.route (a job deleted, a user logged out elsewhere)."""

import time

import pytest

from tests.viewer.browser import CHROMIUM, LiveSite, chromium_browser, logged_in_page, running_site

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

POLL_ROUNDS_S = 7  # jobs.js polls every 1.5 s, or every 3 s beside a live socket: two rounds at least


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(LiveSite, tmp_path_factory.mktemp("jobs-polling-site")) as live:
        yield live


@pytest.fixture(scope="module")
def queued_job(site):
    """A job that stays queued (no worker runs in this module), started from the Analysis page."""
    slide = site.data["fresh"]["slide"]
    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist") as page:
        page.goto(f"{site.url}/slides/{slide}/analysis/")
        with page.expect_navigation():
            page.locator("form.card button[type=submit]").click()
        row = page.locator("tr[data-job][data-final='0']").first
        return {"slide": slide, "job": int(row.get_attribute("data-job"))}


@pytest.mark.parametrize("status", [404, 403])
def test_a_gone_or_forbidden_job_is_polled_once_and_its_row_says_why(site, queued_job, status, request):
    asked = []

    def answer(route):
        asked.append(time.monotonic())
        route.fulfill(status=status, content_type="application/json",
                      body='{"detail": "Not found."}' if status == 404 else '{"detail": "Forbidden."}')

    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist",
                                                       shot=request.node.name) as page:
        page.route(f"**/api/viewer/jobs/{queued_job['job']}/state/", answer)
        page.goto(f"{site.url}/slides/{queued_job['slide']}/analysis/")
        page.wait_for_function("window.pdl1Jobs && window.pdl1Jobs.tracked === 1")
        deadline = time.monotonic() + 10
        while not asked and time.monotonic() < deadline:
            page.wait_for_timeout(100)  # Playwright's events (the route) are handled while it waits
        assert asked, "the state was never asked"
        page.wait_for_timeout(POLL_ROUNDS_S * 1000)
        assert len(asked) == 1, f"asked {len(asked)} times after a {status}"
        assert page.evaluate("window.pdl1Jobs.stopped") == [[queued_job["job"], status]]
        row = page.locator(f"tr[data-job='{queued_job['job']}']")
        assert row.get_attribute("data-progress") == "stopped"
        note = row.locator(".job-progress-stopped").inner_text()
        assert f"({status})" in note and "reload the page" in note, note
        assert "Queued" in row.locator(".job-status").inner_text()  # what was known stays shown
        assert "stopped" in page.locator("#jobs-progress-path").inner_text()
