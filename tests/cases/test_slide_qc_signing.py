"""A slide that failed its check before scoring feeds no signed report unless a pathologist overrides
it with a reason, which the slide page shows, the audit log records and the PDF and FHIR print."""

import io

import pytest
from auditlog.models import LogEntry
from django.test import Client
from pypdf import PdfReader

from cases.choices import ReportStatus
from cases.models import ReportError
from cases.reports import do_create_draft, do_sign, fhir_bundle
from cases.services import IngestError, do_override_slide_qc
from tests.viewer import job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory

FAILED = {"passed": False, "tissue_threshold_od": 0.07, "findings": [
    {"name": "brightfield", "passed": False, "value": 0.98,
     "message": "not brightfield: 98% of the image is dark (a fluorescence scan?)"},
    {"name": "tissue", "passed": True, "value": 0.5, "message": "tissue on 50% of the slide"}]}


@pytest.fixture
def failed_job(personas, media_root):
    job = job_with_result(personas["case"], n=3000, seed=3)
    job.slide.record_qc(FAILED)
    job.slide.save()
    return job


def page(user, url, data=None):
    client = Client()
    client.force_login(user)
    return client.post(url, data) if data is not None else client.get(url)


def test_a_failed_slide_cannot_be_signed_and_its_pages_say_so(personas, failed_job):
    path = personas["pathologist"]
    draft = do_create_draft(personas["case"], failed_job, path)
    with pytest.raises(ReportError, match="failed its check before scoring"):
        do_sign(draft, path, PASSWORD)
    draft.refresh_from_db()
    assert draft.status == ReportStatus.DRAFT
    slide = failed_job.slide
    for url in (f"/slides/{slide.pk}/", f"/slides/{slide.pk}/analysis/", f"/slides/{slide.pk}/viewer/"):
        body = page(path, url).content.decode()
        assert "not brightfield" in body, url


def test_override_needs_a_reason_and_a_pathologist(personas, failed_job):
    slide = failed_job.slide
    with pytest.raises(IngestError, match="reason"):
        do_override_slide_qc(slide, personas["pathologist"], "   ")
    with pytest.raises(IngestError, match="pathologist"):
        do_override_slide_qc(slide, personas["admin"], "because")
    slide.refresh_from_db()
    assert slide.qc_status == "failed" and not slide.qc_override_reason


def test_an_override_lets_the_report_be_signed_and_the_pdf_and_fhir_print_it(personas, failed_job):
    path = personas["pathologist"]
    slide = failed_job.slide
    draft = do_create_draft(personas["case"], failed_job, path)  # prepared before the override
    reason = "Brightfield scan verified on the glass; the scanner labelled it wrongly."
    response = page(path, f"/slides/{slide.pk}/", {"qc_override": reason})
    assert response.status_code == 302
    slide.refresh_from_db()
    assert slide.qc_status == "overridden" and slide.qc_override_by == path and slide.qc_override_at
    entry = LogEntry.objects.get_for_object(slide).filter(actor=path).latest("timestamp")
    assert "qc_override_reason" in entry.changes_dict
    assert reason in page(path, f"/slides/{slide.pk}/").content.decode()

    do_sign(draft, path, PASSWORD)
    draft.refresh_from_db()
    assert draft.status == ReportStatus.SIGNED
    assert draft.scores["slide_qc"]["override"]["reason"] == reason
    pdf = page(path, f"/api/reports/{draft.pk}/pdf/").content
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "Slide check before scoring FAILED" in text and "not brightfield" in text
    assert "Brightfield scan verified on the glass" in text
    conclusion = fhir_bundle(draft)["entry"][0]["resource"]["conclusion"]
    assert "FAILED" in conclusion and reason in conclusion


def test_a_passed_slide_signs_and_says_so(personas, media_root):
    job = job_with_result(personas["case"], n=3000, seed=3)
    job.slide.record_qc({"passed": True, "findings": []})
    job.slide.save()
    draft = do_create_draft(personas["case"], job, personas["pathologist"])
    do_sign(draft, personas["pathologist"], PASSWORD)
    draft.refresh_from_db()
    assert draft.scores["slide_qc"]["status"] == "passed"
    assert "check before scoring passed" in fhir_bundle(draft)["entry"][0]["resource"]["conclusion"]


def test_the_api_shows_the_slide_check(personas, failed_job):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(personas["pathologist"])
    data = client.get(f"/api/slides/{failed_job.slide_id}/").json()
    assert data["qc_status"] == "failed" and data["qc"]["findings"][0]["name"] == "brightfield"
    assert data["qc_override_reason"] == ""
    draft = do_create_draft(personas["case"], failed_job, personas["pathologist"])
    fingerprint = client.get(f"/api/reports/{draft.pk}/").json()["draft_fingerprint"]
    response = client.post(f"/api/reports/{draft.pk}/sign/", {"password": PASSWORD, "draft_fingerprint": fingerprint},
                           format="json")
    assert response.status_code == 400 and "check before scoring" in str(response.json())


def test_only_pathologists_see_the_override_form(personas, failed_job):
    url = f"/slides/{failed_job.slide_id}/"
    assert 'name="qc_override"' in page(personas["pathologist"], url).content.decode()
    admin_page = page(personas["admin"], url).content.decode()
    assert "not brightfield" in admin_page and 'name="qc_override"' not in admin_page
