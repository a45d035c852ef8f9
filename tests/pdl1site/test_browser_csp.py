"""Every page with scripts works under the site's Content-Security-Policy, in real headless Chromium.

The other browser tests bypass the CSP (Playwright's wait_for_function needs eval); this one does not:
it waits by polling page.evaluate (DevTools, outside the page's CSP) and fails on any refusal the
browser reports, or any JavaScript error.
"""

import time

import pytest

from tests.annotations.test_browser import AnnotationSite
from tests.viewer.browser import CHROMIUM, chromium_browser, login, report_csp_violations, running_site

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(AnnotationSite, tmp_path_factory.mktemp("csp-site")) as live:
        yield live


def wait_until(page, expression: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}; errors: {page.js_errors}")
        time.sleep(0.2)


def strict_page(browser, site, username):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    report_csp_violations(page)
    login(page, site.url, username)
    return context, page


def test_pages_work_under_the_content_security_policy(site):
    with chromium_browser() as browser:
        context, page = strict_page(browser, site, "pathologist")
        # the viewer: OpenSeadragon, its navigator and our overlay script
        response = page.goto(f"{site.url}/slides/{site.data['slide']}/viewer/")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        wait_until(page, "window.pdl1Viewer && window.pdl1Viewer.ready && window.pdl1Viewer.tilesLoaded >= 4")
        # OpenSeadragon found our nonce'd copy of its style rule and injected none of its own
        assert page.evaluate("document.querySelectorAll('style[data-openseadragon-mobile-css]').length") == 1
        # a websocket from the page: allowed by connect-src 'self' and by the origin check (host and port)
        page.evaluate("""(slide) => {
            window.wsResult = null;
            const ws = new WebSocket(`ws://${location.host}/ws/slides/${slide}/`);
            ws.onopen = () => { window.wsResult = "open"; ws.close(); };
            ws.onerror = () => { window.wsResult = window.wsResult || "error"; };
        }""", site.data["slide"])
        wait_until(page, "window.wsResult !== null")
        assert page.evaluate("window.wsResult") == "open"
        # the review page and the field-drawing page
        page.goto(f"{site.url}/annotate/fields/{site.data['review_field']}/review/")
        wait_until(page, "window.pdl1Review && window.pdl1Review.ready && window.pdl1Review.tilesLoaded >= 1")
        page.goto(f"{site.url}/annotate/projects/{site.data['draw_project']}/fields/draw/?slide={site.data['pseudo_id']}")
        wait_until(page, "window.pdl1DrawField && window.pdl1DrawField.ready && window.pdl1DrawField.tilesLoaded >= 1")
        # the Analysis page's progress script (a static file) runs under the policy
        page.goto(f"{site.url}/slides/{site.data['slide']}/analysis/")
        wait_until(page, "window.pdl1Jobs !== undefined")
        # plain pages, and Swagger UI (its start-up script is a file of its own)
        for path in ("/cases/", "/patients/", "/annotate/projects/", "/reports/"):
            page.goto(site.url + path)
        page.goto(f"{site.url}/api/schema/swagger-ui/")
        wait_until(page, "document.querySelector('.swagger-ui .info') !== null")
        context.close()
        assert not page.js_errors, page.js_errors

        context, page = strict_page(browser, site, "annotator")
        page.goto(f"{site.url}/annotate/sessions/{site.data['sessions']['edit']}/")
        wait_until(page, "window.pdl1Annotate && window.pdl1Annotate.ready && window.pdl1Annotate.tilesLoaded >= 1")
        context.close()
        assert not page.js_errors, page.js_errors
