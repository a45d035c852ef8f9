"""A pathologist's working day without typing a URL (issue 18): one page.goto, to the login page, and
from there only clicks, in real headless Chromium against a live site (daphne + qcluster workers):
worklist -> case -> slide -> viewer (start the analysis, watch it finish) -> the slide's Analysis
page (the finished job and its TPS) -> viewer (reclassify a cell) -> slide -> case -> report (prepare
the draft, sign it) -> download the signed PDF. Every page on the way must link to the next.
Screenshots: test-artifacts/day-*.png.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.viewer.browser import CHROMIUM, POINT_NEAR_CENTRE, chromium_browser, login, screenshot, site_fixture
from tests.viewer.browser import main as browser_main

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

TIMEOUT_MS = 20_000
ACCESSION = "S26-DAY"
SLIDE_NAME = "SYNTHETIC-day.tiff"


# The live site with this module's setup (main below): a pathologist and a case holding one unanalysed slide.
site = site_fixture(__name__, "browser-day")


def shot(page, stage: str) -> None:
    time.sleep(0.2)  # let the last redraw land
    screenshot(page, f"day-{stage}")


def click_to(page, locator) -> None:
    """Follow a link or submit a form by clicking it, and wait for the next page."""
    with page.expect_navigation():
        locator.click()


def viewer_ready(page) -> None:
    page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")


def test_a_pathologists_day_by_clicks_only(site, tmp_path):
    from pypdf import PdfReader

    site.start_workers()
    errors: list[str] = []
    with chromium_browser() as browser:
        # bypass_csp: wait_for_function uses eval(); tests/pdl1site/test_browser_csp.py checks the CSP.
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                                      bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        typed: list[str] = []
        goto = page.goto

        def counted_goto(url, **kwargs):
            typed.append(url)
            return goto(url, **kwargs)

        page.goto = counted_goto

        # The login page is the only address typed; the pathologist lands on the worklist.
        login(page, site.url, "pathologist")
        assert typed == [f"{site.url}/accounts/login/"]
        to_analyse = page.locator("#worklist-to_analyse")
        assert ACCESSION in to_analyse.inner_text(), page.locator("body").inner_text()[:2000]
        shot(page, "1-worklist")

        # worklist -> case -> slide
        click_to(page, to_analyse.get_by_role("link", name=ACCESSION))
        assert ACCESSION in page.locator("h1").inner_text()
        card = page.locator(".slide.card", has_text=SLIDE_NAME)
        assert "Not analysed yet" in card.inner_text()
        click_to(page, card.get_by_role("link", name=SLIDE_NAME))
        assert SLIDE_NAME in page.locator("h1").inner_text()
        shot(page, "2-slide")

        # slide -> viewer: start the analysis there and watch it finish
        click_to(page, page.locator("#open-viewer"))
        viewer_ready(page)
        page.locator("#start-job-button").click()
        page.wait_for_selector("#progress", state="visible")
        page.wait_for_function("window.pdl1Viewer.lastState && window.pdl1Viewer.lastState.status === 'done'",
                               timeout=90_000)
        page.wait_for_function("document.getElementById('tps').textContent.includes('%')")
        shot(page, "3-analysed")

        # viewer -> slide -> its Analysis page: the finished job with its detections before review (no TPS:
        # the job's TPS is the viewer's, corrected and counted inside the regions)
        click_to(page, page.locator("#pdl1-viewer-page .viewer-panel a", has_text=SLIDE_NAME))
        click_to(page, page.get_by_role("link", name="Analysis", exact=True))
        assert page.locator("h1").inner_text().startswith("Analysis of")
        done_row = page.locator("tbody tr", has_text="Done").first
        assert done_row.locator("td.before-review").first.inner_text().strip().isdigit(), \
            page.locator("body").inner_text()[:2000]
        assert "%" not in " ".join(done_row.locator("td.before-review").all_inner_texts())
        shot(page, "4-analysis-page")

        # Analysis page -> viewer: reclassify a positive cell near the centre
        click_to(page, page.locator("#open-viewer"))
        viewer_ready(page)
        page.wait_for_function("window.pdl1Viewer.correctionsVersion !== null")
        page.wait_for_function("window.pdl1Viewer.mode === 'points' && window.pdl1Viewer.drawnCounts.positive > 0")
        version = page.evaluate("window.pdl1Viewer.correctionsVersion")
        tps_before = page.locator("#tps").inner_text()
        target = page.evaluate(POINT_NEAR_CENTRE, 1)
        assert target is not None
        page.mouse.click(target["x"], target["y"])
        page.wait_for_function("window.pdl1Viewer.selected !== null")
        page.locator("#reclass-negative").click()
        page.wait_for_function(f"window.pdl1Viewer.correctionsVersion === {version + 1}")
        page.wait_for_function(f"document.getElementById('tps').textContent !== {tps_before!r}")
        viewer_counts = {k: int(page.locator(f"#count-{k}").inner_text().replace(",", ""))
                         for k in ("positive", "negative")}
        shot(page, "5-corrected")

        # viewer -> slide -> case -> report: prepare the draft from the corrected analysis, sign it
        click_to(page, page.locator("#pdl1-viewer-page .viewer-panel a", has_text=SLIDE_NAME))
        click_to(page, page.get_by_role("link", name=ACCESSION))
        click_to(page, page.get_by_role("link", name="Report, sign-off and versions"))
        click_to(page, page.locator("#draft-form button[type=submit]"))
        draft = page.locator("#current").inner_text()
        assert "Draft" in draft and (f"{viewer_counts['positive']:,} positive, {viewer_counts['negative']:,} negative"
                                     in draft), (draft, viewer_counts)
        shot(page, "6-draft")
        page.locator("#sign-form input[name=password]").fill("pw-for-tests-123")
        click_to(page, page.locator("#sign-form button[type=submit]"))
        assert "Signed" in page.locator("#current h2").inner_text(), page.locator("body").inner_text()[:2000]
        shot(page, "7-signed")

        # report -> the signed PDF, downloaded by a click
        with page.expect_download() as info:
            page.locator("#current").get_by_role("link", name="PDF", exact=True).click()
        download = info.value
        assert download.suggested_filename == f"{ACCESSION}-v1.pdf"
        pdf_path = Path(tmp_path) / download.suggested_filename
        download.save_as(pdf_path)
        text = "\n".join(p.extract_text() or "" for p in PdfReader(str(pdf_path)).pages)
        assert pdf_path.read_bytes().startswith(b"%PDF") and ACCESSION in text and "TPS" in text, text[:2000]

        assert typed == [f"{site.url}/accounts/login/"], typed  # still only the login page typed
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


# --- the setup command (runs in the site's environment) ----------------------------------------


def _setup(tmp: Path) -> dict:
    from analysis.synthetic_slide import write_pyramidal_tiff
    from cases.choices import Role
    from cases.services import IngestSource, do_ingest_slide
    from tests.factories import CaseFactory, DepartmentFactory, make_user

    dept = DepartmentFactory(code="dept-day")
    make_user(Role.PATHOLOGIST, [dept], username="pathologist")
    case = CaseFactory(patient__department=dept, accession=ACCESSION)
    tiff = write_pyramidal_tiff(tmp / SLIDE_NAME, size=(1024, 1024), mpp=0.5, seed=11, tile=256, compression="zlib")
    slide = do_ingest_slide([IngestSource(name=SLIDE_NAME, path=Path(tiff.path))], case=case).slide
    return {"case": case.pk, "slide": slide.pk}


def main() -> None:
    browser_main(_setup)
