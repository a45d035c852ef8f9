"""The demo's first screen (issue 18 item 11) in headless Chromium: on a live site loaded by `load_demo`
(as `make run` does), the demo pathologist clicks from the worklist to the real PD-L1 (SP142) IHC slide
and its viewer, which shows the analysis made at load: detections of both classes, counts and a TPS;
the H&E slide is labelled as not IHC. Screenshots: test-artifacts/demo-*.png.
"""

from __future__ import annotations

import io
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from tests.viewer.browser import CHROMIUM, chromium_browser, login, screenshot, site_fixture
from tests.viewer.browser import main as browser_main

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

ACCESSION = "DEMO-2026-0001"
PDL1_NAME = "PDL1-SP142-GPEC-demo.tif"

# Opaque pixels of the viewer's overlay canvas (points or heatmap drawn over the slide).
OPAQUE_OVERLAY_PIXELS = """() => {
  const c = document.querySelector('canvas.pdl1-overlay');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 128) n++;
  return n;
}"""


site = site_fixture(__name__, "browser-demo")  # the live site loaded by the demo command itself


def count(page, name: str) -> int:
    return int(page.locator(f"#count-{name}").inner_text().replace(",", ""))


def test_the_demo_opens_on_real_pdl1_detections(site):
    with chromium_browser() as browser:
        # bypass_csp: wait_for_function uses eval(); tests/pdl1site/test_browser_csp.py checks the CSP.
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        login(page, site.url, "pathologist", password=site.data["logins"]["pathologist"])
        screenshot(page, "demo-1-worklist")
        with page.expect_navigation():
            page.get_by_role("link", name=ACCESSION).first.click()
        assert page.locator(".slide.card").count() == 2
        assert page.locator(".slide.card", has_text="not IHC - for format demonstration only").count() == 1
        pdl1 = page.locator(".slide.card", has_text=PDL1_NAME)
        with page.expect_navigation():
            pdl1.get_by_role("link", name=PDL1_NAME).click()
        assert "PD-L1" in page.locator(".facts").inner_text()
        with page.expect_navigation():
            page.locator("#open-viewer").click()
        page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")
        page.wait_for_function("document.getElementById('tps').textContent.includes('%')")
        assert "Done" in page.locator("#job-line").inner_text()
        assert count(page, "positive") > 0 and count(page, "negative") > 0
        page.wait_for_function(f"({OPAQUE_OVERLAY_PIXELS})() > 100")
        time.sleep(0.3)  # let the last redraw land
        screenshot(page, "demo-2-viewer")
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


# --- the setup command (runs in the site's environment) ----------------------------------------


def _setup(tmp: Path) -> dict:
    import json

    from django.core.management import call_command

    out = io.StringIO()
    with redirect_stdout(out):
        call_command("load_demo", "--not-production", stdout=out)
    loaded = json.loads(out.getvalue())
    assert loaded["analysis"]["status"] == "done", loaded
    return loaded


def main() -> None:
    browser_main(_setup)
