"""The case page shows each slide's analysis status and TPS; the Analysis page marks unfinished jobs
for its live progress script."""

import pytest

from analysis.choices import JobStatus
from tests.viewer import DoneJobFactory, client_for, job_with_result

pytestmark = pytest.mark.django_db


def test_case_page_shows_each_slides_status_and_tps(personas, media_root):
    done = job_with_result(personas["case"], n=400, seed=2)
    running = DoneJobFactory(slide__case=personas["case"], status=JobStatus.RUNNING, tiles_done=3, tiles_total=9,
                             summary={})
    body = client_for(personas["pathologist"]).get(f"/cases/{personas['case'].pk}/").content.decode()
    done_card = body[body.index(f'data-slide="{done.slide_id}"'):]
    done_card = done_card[:done_card.index("</div>")]
    assert "Done" in done_card and f"TPS {done.summary['tps']:.2f} %" in done_card
    running_card = body[body.index(f'data-slide="{running.slide_id}"'):]
    running_card = running_card[:running_card.index("</div>")]
    assert "Running" in running_card and "3 / 9 tiles" in running_card and "TPS" not in running_card


def test_analysis_page_marks_unfinished_jobs_for_live_progress(personas, media_root):
    running = DoneJobFactory(slide__case=personas["case"], status=JobStatus.RUNNING, tiles_total=4)
    body = client_for(personas["pathologist"]).get(f"/slides/{running.slide_id}/analysis/").content.decode()
    assert f'data-job="{running.pk}" data-final="0"' in body
    assert "/static/workers/jobs.js" in body and 'id="jobs-progress-path"' in body
