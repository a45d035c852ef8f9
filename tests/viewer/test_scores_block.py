"""The viewer page's Scores block shows only the server's corrected scores: the page embeds no job summary
(uncorrected, whole-slide) for the script to show first or leave up when /corrections/ fails, and the script
computes no category of its own (the server's, from the case's cut-off table, is the one the report states).

The page's behaviour (\"—\" until the corrected scores arrive, cleared with the reason on a failed load) needs
a browser: see static/viewer/scores.js clearScores; the checks here are the ones without one."""

import re

import pytest
from django.conf import settings

from tests.viewer import client_for, job_with_result
from viewer.regions import do_add_region

pytestmark = pytest.mark.django_db
STATIC = settings.BASE_DIR / "viewer" / "static" / "viewer"


@pytest.fixture
def job(personas, media_root):
    job = job_with_result(personas["case"], n=3000, seed=5)
    do_add_region(job, personas["pathologist"], {"base_version": 0, "kind": "tumour",
                                                 "vertices": [[0, 0], [2000, 0], [2000, 2000], [0, 2000]]})
    return job


def scores_block(html: str) -> str:
    return re.search(r'<section class="panel-block" id="scores-block">(.*?)</section>', html, re.S).group(1)


def test_the_page_carries_no_uncorrected_summary(personas, job):
    html = client_for(personas["pathologist"]).get(f"/slides/{job.slide.pk}/viewer/").content.decode()
    assert "viewer-job-summary" not in html
    assert f"{job.summary['tps']:.2f}" not in html and str(job.summary["counts"]["positive"]) not in html
    block = scores_block(html)
    for cell in ("count-positive", "count-negative", "tps", "tps-interval", "tps-category"):
        assert re.search(rf'id="{cell}"[^>]*>—<', block), cell
    assert re.search(r'id="scores-status"[^>]*>Loading the corrected scores', block)


def test_the_page_shows_the_unreadable_store_as_a_fault_not_the_summary(personas, job, media_root):
    (media_root / job.result_file).write_bytes(b"garbage")
    client = client_for(personas["pathologist"])
    client.raise_request_exception = False
    html = client.get(f"/slides/{job.slide.pk}/viewer/").content.decode()
    assert "viewer-job-summary" not in html and f"{job.summary['tps']:.2f}" not in html
    assert client.get(f"/api/viewer/jobs/{job.pk}/corrections/").status_code == 503  # the page clears on this


def test_the_script_computes_no_category_and_shows_no_summary():
    scores = (STATIC / "scores.js").read_text()
    assert "scores.tps_category" in scores
    assert not re.search(r"TPS\s*(<|>=|1-49)", scores)  # no cut-off table of its own
    assert "viewer-job-summary" not in scores and "showInitialScores" not in scores
    progress = (STATIC / "progress.js").read_text()
    assert "showScores(state.summary)" not in progress  # a finished job's summary is uncorrected too
    corrections = (STATIC / "corrections.js").read_text()
    assert 'clearScores("Scores unavailable: "' in corrections  # a failed load clears the block
