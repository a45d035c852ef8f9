"""The viewer is reachable without typing a URL: slide, case, analysis and report pages link it."""

import pytest

from cases.reports import do_create_draft, do_sign
from tests.viewer import client_for, job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


@pytest.fixture
def job(personas, media_root):
    job = job_with_result(personas["case"], n=500, seed=1)
    job.slide.record_qc({"passed": True, "findings": []})
    job.slide.save()
    return job


def test_slide_case_analysis_and_report_pages_link_the_viewer(personas, job):
    slide, case = job.slide, personas["case"]
    viewer = f'href="/slides/{slide.pk}/viewer/"'
    draft = do_create_draft(case, job, personas["pathologist"])
    client = client_for(personas["pathologist"])
    for url in (f"/slides/{slide.pk}/", f"/cases/{case.pk}/", f"/slides/{slide.pk}/analysis/",
                f"/cases/{case.pk}/report/", f"/reports/{draft.pk}/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert viewer in response.content.decode(), url
    assert client.get(f"/slides/{slide.pk}/viewer/").status_code == 200


def test_clinicians_get_no_viewer_link_on_their_report(personas, job):
    draft = do_create_draft(personas["case"], job, personas["pathologist"])
    do_sign(draft, personas["pathologist"], PASSWORD)
    body = client_for(personas["clinician"]).get(f"/reports/{draft.pk}/").content.decode()
    assert "Download PDF" in body and "/viewer/" not in body
