"""A slide that failed its check before scoring, in headless Chromium (issue 18 item 1): the pathologist's
draft cannot be signed, the slide page flags it and takes an override with a reason, and afterwards the
report signs and its page shows the reason, as the PDF prints it. Screenshots: test-artifacts/slide-check-*.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.viewer.browser import CHROMIUM, PASSWORD, chromium_browser, logged_in_page, screenshot, site_fixture
from tests.viewer.browser import main as browser_main

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

REASON = "PD-L1 staining verified on the on-slide control"
site = site_fixture(__name__, "browser-slide-check")


def test_a_failed_slide_is_flagged_overridden_with_a_reason_then_signed(site, request):
    slide, case = site.data["slide"], site.data["case"]
    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist", height=900,
                                                       shot=request.node.name) as page:
        # The draft of a failed slide does not sign; the report page says why.
        page.goto(f"{site.url}/cases/{case}/report/")
        with page.expect_navigation():
            page.locator("#draft-form button[type=submit]").click()
        page.locator("#sign-form input[name=password]").fill(PASSWORD)
        with page.expect_navigation():
            page.locator("#sign-form button[type=submit]").click()
        assert "Draft" in page.locator("#current h2").inner_text()
        assert "failed its check before scoring" in page.locator("body").inner_text()
        assert "Slide check before scoring FAILED" in page.locator("#current #report-slide-check").inner_text()

        # The slide page flags the check and takes the pathologist's override with a reason.
        page.goto(f"{site.url}/slides/{slide}/")
        check = page.locator("#slide-qc")
        assert "Failed" in check.locator("h2").inner_text() and "not brightfield" in check.inner_text()
        screenshot(page, "slide-check-1-failed")
        check.locator("textarea[name=qc_override]").fill(REASON)
        with page.expect_navigation():
            check.locator("button[type=submit]").click()
        check = page.locator("#slide-qc")
        assert "overridden" in check.locator("h2").inner_text() and REASON in check.inner_text()
        screenshot(page, "slide-check-2-overridden")

        # Now the report signs, and the signed report shows the reason.
        page.goto(f"{site.url}/cases/{case}/report/")
        page.locator("#sign-form input[name=password]").fill(PASSWORD)
        with page.expect_navigation():
            page.locator("#sign-form button[type=submit]").click()
        assert "Signed" in page.locator("#current h2").inner_text(), page.locator("body").inner_text()[:2000]
        assert REASON in page.locator("#current #report-slide-check").inner_text()  # as the PDF prints it


# --- the setup command (runs in the site's environment) ----------------------------------------


def _setup(tmp: Path) -> dict:
    from cases.choices import Role
    from tests.cases.test_slide_qc_signing import FAILED
    from tests.factories import CaseFactory, DepartmentFactory, make_user
    from tests.viewer import job_with_result

    dept = DepartmentFactory(code="dept-check")
    make_user(Role.PATHOLOGIST, [dept], username="pathologist")
    case = CaseFactory(patient__department=dept, accession="S26-CHECK")
    job = job_with_result(case, n=3000, seed=3)
    job.slide.record_qc(FAILED)
    job.slide.save()
    return {"case": case.pk, "slide": job.slide.pk}


def main() -> None:
    browser_main(_setup)
