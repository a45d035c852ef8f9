"""The whole journey in real headless Chromium against a live site (daphne + qcluster workers):
a pathologist uploads a slide through the case page, runs the analysis, corrects a detection,
draws an exclusion region, prepares and signs the report; the treating clinician then finds the
signed report in the list and downloads its PDF. Screenshots: test-artifacts/journey-*.png.

See tests/viewer/browser.py for the site; the setup here only creates the users and an empty case.
"""

from __future__ import annotations

import io
import re
import time

import pytest

from tests.viewer.browser import (CHROMIUM, POINT_NEAR_CENTRE, chromium_browser, draw_square_region, login,
                                  screenshot, site_fixture)
from tests.viewer.browser import main as browser_main

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

TIMEOUT_MS = 20_000
ACCESSION = "S26-JOURNEY"


# The live site with this module's own setup (main below): users and an empty case, no slides.
site = site_fixture(__name__, "browser-journey")


def shot(page, stage: str) -> None:
    time.sleep(0.2)  # let the last redraw land
    screenshot(page, f"journey-{stage}")


def counts(page) -> dict:
    return {k: page.locator(f"#{k}").inner_text() for k in ("count-positive", "count-negative", "tps")}


def total(c: dict) -> int:
    return int(c["count-positive"].replace(",", "")) + int(c["count-negative"].replace(",", ""))


def test_upload_analyse_correct_sign_and_clinician_downloads_pdf(site, tmp_path):
    from pypdf import PdfReader

    from analysis.synthetic_slide import write_pyramidal_tiff

    tiff = write_pyramidal_tiff(tmp_path / "SYNTHETIC-journey.tiff", size=(1024, 1024), mpp=0.5, seed=11, tile=256,
                                compression="zlib")
    site.start_workers()  # the cluster starts while the pathologist uploads
    errors: list[str] = []
    with chromium_browser() as browser:
        # bypass_csp: wait_for_function uses eval(); tests/pdl1site/test_browser_csp.py checks the CSP.
        context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True,
                                      bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # 1. The pathologist opens the case and uploads the slide through the form.
        login(page, site.url, "pathologist")
        page.goto(f"{site.url}/cases/{site.data['case']}/")
        assert ACCESSION in page.locator("h1").inner_text()
        page.locator("input[name=files]").set_input_files(str(tiff.path))
        shot(page, "1-upload")
        with page.expect_navigation():
            page.locator("form.card button[type=submit]", has_text="Upload").click()
        assert "SYNTHETIC-journey.tiff" in page.locator("h1").inner_text(), page.content()[:2000]
        slide_id = int(page.url.rstrip("/").rsplit("/", 1)[-1])
        assert "1024 × 1024" in page.locator(".facts").inner_text()
        shot(page, "2-slide")

        # 2. Analysis (classic detector) started from the viewer; wait until done.
        page.goto(f"{site.url}/slides/{slide_id}/viewer/")
        page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")
        page.locator("#detector").select_option("classic")
        page.locator("#start-job-button").click()
        page.wait_for_selector("#progress", state="visible")
        page.wait_for_function("window.pdl1Viewer.lastState && window.pdl1Viewer.lastState.status === 'done'",
                               timeout=90_000)
        page.wait_for_function("document.getElementById('tps').textContent.includes('%')")
        shot(page, "3-analysed")

        # 3. Review: reopen the viewer on the finished job, reclassify a positive cell, TPS changes.
        page.goto(f"{site.url}/slides/{slide_id}/viewer/")
        page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")
        page.wait_for_function("window.pdl1Viewer.correctionsVersion !== null")
        page.wait_for_function("window.pdl1Viewer.mode === 'points' && window.pdl1Viewer.drawnCounts.positive > 0")
        version = page.evaluate("window.pdl1Viewer.correctionsVersion")
        before = counts(page)
        target = page.evaluate(POINT_NEAR_CENTRE, 1)
        assert target is not None
        page.mouse.click(target["x"], target["y"])
        page.wait_for_function("window.pdl1Viewer.selected !== null")
        assert "positive" in page.locator("#sel-class").inner_text()
        page.locator("#reclass-negative").click()
        page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 1}")
        page.wait_for_function(f"document.getElementById('tps').textContent !== {before['tps']!r}")
        corrected = counts(page)
        assert total(corrected) == total(before)
        shot(page, "4-corrected")

        # 4. An exclusion polygon (necrosis) over the centre: fewer cells count.
        page.locator("#osd .openseadragon-canvas").first.focus()
        page.keyboard.press("Escape")
        draw_square_region(page, "necrosis")
        page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 2}")
        page.wait_for_function("window.pdl1Viewer.regions.length === 1")
        excluded = counts(page)
        assert total(excluded) < total(corrected), (corrected, excluded)
        shot(page, "5-excluded")

        # 5. The case report: prepare the draft from the analysis, sign it with the password.
        page.goto(f"{site.url}/cases/{site.data['case']}/report/")
        assert page.locator("#draft-form select[name=job] option").count() >= 1
        with page.expect_navigation():
            page.locator("#draft-form button[type=submit]").click()
        assert "Draft" in page.locator("#current h2").inner_text()
        draft_text = page.locator("#current").inner_text()
        assert "TPS" in draft_text, draft_text
        # The draft scores the corrected, region-restricted counts the viewer showed.
        scored = re.search(r"Counts: ([\d,]+) positive, ([\d,]+) negative .*version (\d+)", draft_text)
        assert scored, draft_text
        assert [int(g.replace(",", "")) for g in scored.groups()] == [
            int(excluded["count-positive"].replace(",", "")), int(excluded["count-negative"].replace(",", "")),
            version + 2], (draft_text, excluded)
        shot(page, "6-draft")
        page.locator("#sign-form input[name=password]").fill("pw-for-tests-123")
        with page.expect_navigation():
            page.locator("#sign-form button[type=submit]").click()
        assert "Signed" in page.locator("#current h2").inner_text(), page.locator("body").inner_text()[:2000]
        assert page.locator("#amend-form").count() == 1
        shot(page, "7-signed")

        with page.expect_navigation():
            page.locator("form.logout button[type=submit]").click()
        context.close()

        # 6. The treating clinician sees the signed report and downloads the PDF.
        # bypass_csp: wait_for_function uses eval(); tests/pdl1site/test_browser_csp.py checks the CSP.
        context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True,
                                      bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        login(page, site.url, "clinician")
        # The clinician lands on their own home, the report list (issue 18 item 4), with TPS and category (item 9).
        assert page.url == f"{site.url}/reports/", page.url
        row = page.locator("tbody tr", has_text=ACCESSION)
        assert row.count() == 1, page.locator("body").inner_text()[:2000]
        assert "Signed" in row.inner_text()
        assert re.match(r"\d+\.\d\d %", row.locator(".report-tps").inner_text()), row.inner_text()
        assert row.locator(".report-category").inner_text().startswith("TPS "), row.inner_text()
        shot(page, "8-clinician-list")
        with page.expect_download() as info:
            row.locator("a", has_text="PDF").click()
        download = info.value
        assert download.suggested_filename == f"{ACCESSION}-v1.pdf"
        pdf_path = tmp_path / download.suggested_filename
        download.save_as(pdf_path)
        data = pdf_path.read_bytes()
        assert data.startswith(b"%PDF")
        text = "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(data)).pages)
        assert ACCESSION in text and "TPS" in text, text[:2000]
        # A page outside the clinician's work (the case page) is the site's styled 403 that says what to do,
        # and its "home page" link leads back to the report list (issue 18 item 4).
        answer = page.goto(f"{site.url}/cases/{site.data['case']}/")
        assert answer.status == 403
        assert page.locator("#error-403").is_visible() and page.locator(".topbar").is_visible()
        assert "ask an administrator" in page.locator("#error-403").inner_text()
        shot(page, "9-clinician-403")
        with page.expect_navigation():
            page.locator("#error-403 a", has_text="Go to your home page").click()
        assert page.url == f"{site.url}/reports/", page.url
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


# --- the setup command (runs in the site's environment) ----------------------------------------


def _setup(tmp) -> dict:
    from cases.choices import Role
    from tests.factories import CaseFactory, DepartmentFactory, make_user

    dept = DepartmentFactory(code="dept-journey")
    make_user(Role.PATHOLOGIST, [dept], username="pathologist")
    clinician = make_user(Role.CLINICIAN, [dept], username="clinician")
    case = CaseFactory(patient__department=dept, accession=ACCESSION)
    case.patient.clinicians.add(clinician)
    return {"case": case.pk}


def main() -> None:
    """Entry point of the setup subprocess (Django already set up by the caller)."""
    browser_main(_setup)

