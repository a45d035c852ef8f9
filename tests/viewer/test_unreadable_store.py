"""A done job whose detection store cannot be read (missing, damaged) is a fault to repair, not "no result
yet": no report states its uncorrected summary in place of the corrected, region-limited result, and
the API says the file must be restored (503)."""

import pytest

from cases.models import ReportError
from cases.reports import do_create_draft, do_sign
from cases.services import slide_overview
from tests.viewer import client_for, job_with_result
from viewer.regions import do_add_region
from viewer.scores import job_scores

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


@pytest.fixture
def job(personas, media_root):
    job = job_with_result(personas["case"], n=3000, seed=5)
    do_add_region(job, personas["pathologist"], {"base_version": 0, "kind": "tumour",
                                                 "vertices": [[0, 0], [2000, 0], [2000, 2000], [0, 2000]]})
    return job


def damage(job, media_root):
    (media_root / job.result_file).write_bytes(b"garbage")


def test_no_draft_states_the_summary_of_an_unreadable_store(personas, job, media_root):
    corrected = job_scores(job)["counts"]
    assert corrected != job.summary["counts"]  # the region changes the counts
    damage(job, media_root)
    with pytest.raises(ReportError, match="cannot be read.*restore"):
        do_create_draft(personas["case"], job, personas["pathologist"])


def test_a_draft_is_not_signed_once_its_store_is_unreadable(personas, job, media_root):
    draft = do_create_draft(personas["case"], job, personas["pathologist"])
    damage(job, media_root)
    with pytest.raises(ReportError, match="cannot be read"):
        do_sign(draft, personas["pathologist"], PASSWORD)
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_the_api_and_the_case_page_say_so(personas, job, media_root):
    damage(job, media_root)
    client = client_for(personas["pathologist"])
    client.raise_request_exception = False
    response = client.get(f"/api/viewer/jobs/{job.pk}/density/")
    assert response.status_code == 503 and "restore" in response.json()["detail"]
    (row,) = slide_overview([job.slide])
    assert row["tps"] is None and not row["corrected"]  # not the uncorrected TPS in its place
