"""A signature is for the slide check the signer was shown.

A draft states its slide's check before scoring as it stands (Report.state_slide_qc: the result, and any
pathologist's override with its reason, by whom and when), which is what signing records; the
draft_fingerprint covers it. An override changed after the report page (or the API's draft) was read
refuses the signature like any other change to the draft (409 / "the draft changed since you opened it"),
and what is signed (stored scores, PDF, FHIR) states the check the page showed.
"""

import html
import io
import re

import pytest
from pypdf import PdfReader
from rest_framework.test import APIClient

from cases.choices import DocumentKind, ReportStatus, Role
from cases.models import Report, ReportDocument
from cases.reports import DRAFT_CHANGED, do_create_draft, qc_statement
from cases.services import do_override_slide_qc
from tests.cases.test_slide_qc_signing import FAILED
from tests.factories import make_user
from tests.viewer import client_for, job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory
FIRST = "Brightfield scan verified on the glass by the first reader."
SECOND = "Rescanned slide checked by the second reader."


@pytest.fixture
def failed_job(personas, media_root):
    job = job_with_result(personas["case"], n=400, seed=3)
    job.slide.record_qc(FAILED)
    job.slide.save()
    return job


@pytest.fixture
def colleague(personas):
    return make_user(Role.PATHOLOGIST, list(personas["pathologist"].profile.departments.all()), username="patho_b")


def report_page(client, case) -> tuple[str, str, str]:
    """The report page's text, its sign form's fingerprint and its slide-check paragraph."""
    body = client.get(f"/cases/{case.pk}/report/").content.decode()
    fingerprint = re.search(r'name="draft_fingerprint" value="([0-9a-f]{64})"', body).group(1)
    check = re.search(r'<p id="report-slide-check"[^>]*>(.*?)</p>', body, re.S)
    return body, fingerprint, html.unescape(check.group(1)) if check else ""


def sign_on_page(client, case, fingerprint):
    return client.post(f"/cases/{case.pk}/report/", {"step": "sign", "password": PASSWORD,
                                                     "draft_fingerprint": fingerprint}, follow=True)


def signed_documents_state(report: Report, statement: str) -> None:
    """The stored record, FHIR and PDF of `report` all state `statement` about the slide's check."""
    assert qc_statement(report.scores) == statement
    docs = {doc.kind: doc.data for doc in ReportDocument.objects.filter(report=report)}
    assert statement in html.unescape(docs[DocumentKind.FHIR].decode()).replace('\\"', '"')
    pdf = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(docs[DocumentKind.PDF])).pages).split())
    assert " ".join(statement.split()) in pdf


@pytest.mark.parametrize("second_reason", [SECOND, FIRST], ids=["other-reason", "same-reason-other-pathologist"])
def test_an_override_changed_after_the_page_was_read_refuses_the_signature(personas, colleague, failed_job,
                                                                         second_reason):
    """A reads the draft with the override "FIRST" by A; B overrides again (another reason, or the same one:
    the report states by whom). A's signature from the page read before is refused, nothing is signed;
    reviewed again, it signs and every signed document states the override the page showed then."""
    case, a, slide = personas["case"], personas["pathologist"], failed_job.slide
    draft = do_create_draft(case, failed_job, a)
    do_override_slide_qc(slide, a, FIRST)
    web = client_for(a)
    body, seen, shown = report_page(web, case)
    assert FIRST in shown and "by pathologist" in shown

    do_override_slide_qc(slide, colleague, second_reason)
    text = sign_on_page(web, case, seen).content.decode()
    assert "The draft changed since you opened it" in text
    row = Report.objects.get(pk=draft.pk)
    assert row.status == ReportStatus.DRAFT and row.signed_at is None
    assert not ReportDocument.objects.filter(report=row).exists()

    body, now, shown = report_page(web, case)
    assert now != seen and second_reason in shown and "by patho_b" in shown
    sign_on_page(web, case, now)
    row.refresh_from_db()
    assert row.status == ReportStatus.SIGNED and row.scores["slide_qc"]["override"]["by"] == "patho_b"
    signed_documents_state(row, shown)


def test_a_draft_prepared_before_the_override_shows_and_signs_the_override(personas, failed_job):
    """The override follows the draft (its stored check says FAILED, no override): the page shows the check
    signing records, and the signed documents state exactly that."""
    case, path = personas["case"], personas["pathologist"]
    draft = do_create_draft(case, failed_job, path)
    do_override_slide_qc(failed_job.slide, path, FIRST)
    web = client_for(path)
    body, fingerprint, shown = report_page(web, case)
    assert "FAILED" in shown and "not brightfield" in shown and FIRST in shown
    sign_on_page(web, case, fingerprint)
    row = Report.objects.get(pk=draft.pk)
    assert row.status == ReportStatus.SIGNED
    signed_documents_state(row, shown)


def test_a_passed_slide_signs_from_the_page(personas, media_root):
    case, path = personas["case"], personas["pathologist"]
    job = job_with_result(case, n=400, seed=5)
    job.slide.record_qc({"passed": True, "findings": []})
    job.slide.save()
    draft = do_create_draft(case, job, path)
    web = client_for(path)
    body, fingerprint, shown = report_page(web, case)
    assert "check before scoring passed" in shown
    sign_on_page(web, case, fingerprint)
    row = Report.objects.get(pk=draft.pk)
    assert row.status == ReportStatus.SIGNED
    signed_documents_state(row, shown)


def test_the_api_refuses_a_signature_after_the_override_changed(personas, colleague, failed_job):
    case, a, slide = personas["case"], personas["pathologist"], failed_job.slide
    draft = do_create_draft(case, failed_job, a)
    do_override_slide_qc(slide, a, FIRST)
    client = APIClient()
    client.force_authenticate(a)
    read = client.get(f"/api/reports/{draft.pk}/").json()
    assert read["scores"]["slide_qc"]["override"]["reason"] == FIRST
    assert FIRST in client.get(f"/api/reports/{draft.pk}/fhir/").content.decode()  # the draft's live rendering

    do_override_slide_qc(slide, colleague, SECOND)
    url = f"/api/reports/{draft.pk}/sign/"
    stale = client.post(url, {"password": PASSWORD, "draft_fingerprint": read["draft_fingerprint"]}, format="json")
    assert stale.status_code == 409 and stale.json()["detail"] == DRAFT_CHANGED
    assert Report.objects.get(pk=draft.pk).status == ReportStatus.DRAFT

    fresh = client.get(f"/api/reports/{draft.pk}/").json()
    assert fresh["scores"]["slide_qc"]["override"]["reason"] == SECOND
    signed = client.post(url, {"password": PASSWORD, "draft_fingerprint": fresh["draft_fingerprint"]}, format="json")
    assert signed.status_code == 200 and signed.json()["status"] == "signed"
    assert signed.json()["scores"]["slide_qc"] == fresh["scores"]["slide_qc"]
    signed_documents_state(Report.objects.get(pk=draft.pk), qc_statement(fresh["scores"]))


@pytest.mark.django_db(transaction=True)
def test_an_override_waits_while_the_report_is_being_signed(personas, colleague, media_root, monkeypatch):
    """Between the fingerprint comparison and the stored documents the slide's check holds still (its row is
    locked): an override sent meanwhile waits, and the signed report states the check that was compared.
    PostgreSQL only (SQLite serialises writers anyway)."""
    import threading

    from django.db import DatabaseError, connection, connections, transaction

    from cases.models import Slide
    from cases.reports import do_sign, draft_fingerprint

    if connection.vendor != "postgresql":
        pytest.skip("needs a server database with real concurrent connections")
    case, a = personas["case"], personas["pathologist"]
    job = job_with_result(case, n=200, seed=3)
    job.slide.record_qc(FAILED)
    job.slide.save()
    do_override_slide_qc(job.slide, a, FIRST)
    draft = do_create_draft(case, job, a)
    seen = draft_fingerprint(Report.objects.get(pk=draft.pk).state_slide_qc())
    inside, release, outcome = threading.Event(), threading.Event(), {}
    real_sign = Report.sign

    def slow_sign(self, user, password):
        inside.set()
        release.wait(10)
        return real_sign(self, user, password)

    def sign():
        try:
            do_sign(Report.objects.get(pk=draft.pk), a, PASSWORD, seen)
            outcome["signed"] = True
        finally:
            connections.close_all()

    monkeypatch.setattr(Report, "sign", slow_sign)
    signer = threading.Thread(target=sign)
    try:
        signer.start()
        assert inside.wait(10)
        with pytest.raises(DatabaseError), transaction.atomic():  # an override's UPDATE would have to wait
            Slide.objects.select_for_update(nowait=True).get(pk=job.slide_id)
    finally:
        release.set()
        signer.join(10)
    monkeypatch.undo()
    assert outcome == {"signed": True}
    do_override_slide_qc(Slide.objects.get(pk=job.slide_id), colleague, SECOND)  # after the signature
    row = Report.objects.get(pk=draft.pk)
    assert row.status == ReportStatus.SIGNED and row.scores["slide_qc"]["override"]["reason"] == FIRST
    signed_documents_state(row, qc_statement(row.scores))
