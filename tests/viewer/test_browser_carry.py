"""The viewer tells the pathologist what a re-run did with the earlier run's corrections (issue 18 item 5
follow-up), in real headless Chromium against a live site.

The site's sparse slide gets a real re-run: two corrections on its first job (a deletion, a
reclassification), then a second done job whose detections lack the reclassified cell, carried over by
viewer.carry.do_carry_over. The viewer opens on the second job and must show the carry notice: what was
carried, the one not carried with where and why, a button going there, and Dismiss (kept for this job).
Screenshots: in the test's tmp dir (carry-*.png).
"""

import json
import subprocess
import sys

import pytest

from tests.viewer.browser import CHROMIUM, PYTHON, REPO, LiveSite, running_site, screenshot
from tests.viewer.test_browser_tools import page  # noqa: F401  the pathologist's page on this module's site

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

REPLY = "RERUN "


class RerunSite(LiveSite):
    """The viewer's live site, plus a re-run of the sparse slide with carried corrections."""

    def _setup(self) -> dict:
        data = super()._setup()
        code = ("import django; django.setup(); from tests.viewer.test_browser_carry import rerun; "
                "rerun()")
        out = subprocess.run([PYTHON, "-c", code, json.dumps(data)], cwd=REPO, env=self.env, capture_output=True,
                             text=True, timeout=180)
        for line in out.stdout.splitlines():
            if line.startswith(REPLY):
                return {**data, "rerun": json.loads(line[len(REPLY):])}
        raise AssertionError(f"re-run setup failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def rerun() -> None:
    """Runs in the site's environment: corrections on the sparse slide's job, then its re-run."""
    from pathlib import Path

    import numpy as np
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from analysis.choices import JobStatus
    from analysis.detection_store import write_store
    from analysis.models import AnalysisJob
    from viewer.carry import do_carry_over
    from viewer.corrections import do_add_correction
    from viewer.stores import job_store

    data = json.loads(sys.argv[1])
    first = AnalysisJob.objects.select_related("slide").get(pk=data["sparse"]["job"])
    slide, user = first.slide, get_user_model().objects.get(username="pathologist")
    points = job_store(first).all()
    xy, labels, scores = points.xy, points.labels, points.scores
    flipped = "negative" if int(labels[1]) == 1 else "positive"
    do_add_correction(first, user, {"base_version": 0, "op": "delete", "detection": 0})
    do_add_correction(first, user, {"base_version": 1, "op": "reclassify", "detection": 1, "label": flipped})
    keep = np.ones(len(labels), bool)
    keep[1] = False  # the re-run does not find the reclassified cell
    relative = f"jobs/rerun-{slide.pk}/detections.store"
    write_store(Path(settings.MEDIA_ROOT) / relative, xy[keep], labels[keep], scores[keep], width=slide.width,
                height=slide.height, mpp=slide.mpp_x)
    second = AnalysisJob.objects.create(slide=slide, detector="classic", status=JobStatus.DONE, result_file=relative,
                                        summary=first.summary)
    report = do_carry_over(second)
    sys.stdout.write(REPLY + json.dumps({"job": second.pk, "first": first.pk, "report": report,
                                         "missed_xy": [float(v) for v in xy[1]]}) + "\n")
    sys.stdout.flush()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(RerunSite, tmp_path_factory.mktemp("browser-carry")) as live:
        yield live


def open_viewer(page, site):
    page.goto(f"{site.url}/slides/{site.data['sparse']['slide']}/viewer/")
    page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")
    page.wait_for_function("window.pdl1Viewer.correctionsVersion !== null")


def test_the_viewer_shows_what_a_rerun_carried_and_what_it_did_not(page, site):
    rerun_data = site.data["rerun"]
    report = rerun_data["report"]
    assert report["carried"] == 1 and len(report["not_carried"]) == 1  # the setup did a real carry
    api = page.request.get(f"{site.url}/api/viewer/jobs/{rerun_data['job']}/corrections/").json()
    assert api["carry_over"]["message"] == report["message"]

    open_viewer(page, site)
    assert page.locator("#job-line").inner_text().startswith(f"Job {rerun_data['job']} ")
    notice = page.locator("#carry-notice")
    notice.wait_for(state="visible")
    assert page.locator("#carry-message").inner_text() == report["message"]
    assert "1 correction of the earlier analysis" in report["message"] and "1 not carried" in report["message"]
    missed = page.locator("#carry-missed li")
    assert missed.count() == 1
    x, y = rerun_data["missed_xy"]
    text = missed.first.inner_text()
    assert text.startswith("reclassified to ") and f"at ({round(x)}, {round(y)})" in text
    assert "no detection of the new run within 4 µm" in text
    assert "carry-incomplete" in notice.get_attribute("class")
    # in view on a 900-px screen, at the top of the panel
    box = notice.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 900
    screenshot(page, "carry-notice")

    # "Go there" centres the view on the place of the correction that was not carried, at 20x
    missed.first.locator("button.carry-go").click()
    page.wait_for_function("document.getElementById('magnification').textContent === '20×'")
    page.wait_for_function("(vp => Math.abs(vp.getZoom(true) - vp.getZoom(false)) < 1e-9"
                           " && vp.getCenter(true).distanceTo(vp.getCenter(false)) < 1e-9)"
                           "(window.pdl1Viewer.viewer.viewport)")
    centre = page.evaluate("""() => { const vp = window.pdl1Viewer.viewer.viewport;
      const c = vp.viewportToImageCoordinates(vp.getCenter(true)); return [c.x, c.y]; }""")
    assert abs(centre[0] - x) < 5 and abs(centre[1] - y) < 5, (centre, x, y)
    screenshot(page, "carry-go-there")

    # Dismiss hides it, and it stays dismissed for this job on the next visit
    page.locator("#carry-dismiss").click()
    assert not notice.is_visible()
    open_viewer(page, site)
    page.wait_for_timeout(300)
    assert not notice.is_visible()
    assert page.evaluate("window.pdl1Viewer.correctionsVersion") is not None


def test_a_job_without_a_rerun_shows_no_notice(page, site):
    page.goto(f"{site.url}/slides/{site.data['dense']['slide']}/viewer/")
    page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")
    page.wait_for_function("window.pdl1Viewer.correctionsVersion !== null")
    page.wait_for_timeout(300)
    assert not page.locator("#carry-notice").is_visible()
