"""A signature is for the draft the signer reviewed.

reports.draft_fingerprint (sha256 of the draft's job, scores, comment, amendment reason, the version it
supersedes and the case's and patient's reported fields) is sent by the report page's sign form and read
from the API's report representation (`draft_fingerprint`); do_sign compares it under the row lock. A draft
prepared again by a colleague, re-commented, or whose case or patient changed since it was read is refused
("the draft changed since you opened it": 409 in the API, a message on the page), nothing signed.
"""

import re

import pytest
from django.db import models
from rest_framework.test import APIClient

from cases.choices import ReportStatus, Role
from cases.models import Report, ReportConflict, ReportDocument
from cases.reports import DRAFT_CHANGED, do_amend, do_create_draft, do_sign, do_update_draft, draft_fingerprint
from tests.cases.test_comment_sign_race import _in_thread, _needs_server_database, _wait_for_a_lock_wait
from tests.factories import make_user
from tests.viewer import client_for, job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def page_fingerprint(client, case) -> str:
    body = client.get(f"/cases/{case.pk}/report/").content.decode()
    return re.search(r'name="draft_fingerprint" value="([0-9a-f]{64})"', body).group(1)


@pytest.fixture
def job(personas, media_root):
    return job_with_result(personas["case"], n=400, seed=11)


@pytest.fixture
def colleague(personas):
    return make_user(Role.PATHOLOGIST, list(personas["pathologist"].profile.departments.all()), username="patho_b")


@pytest.mark.django_db(transaction=True)
def test_a_signing_waits_for_a_comment_save_and_is_refused(personas, media_root, monkeypatch):
    """The reviewer's interleaving between two connections: a signing starts between the comment save's
    guard and its write. It waits for the comment to commit, then finds a draft other than the one its
    signer reviewed: refused, nothing signed, no documents."""
    _needs_server_database()
    path = personas["pathologist"]
    job = job_with_result(personas["case"], n=200, seed=3)
    draft = do_create_draft(personas["case"], job, path, comment="as reviewed")
    reviewed = draft_fingerprint(draft)
    outcome, threads = {}, []
    real_save = models.Model.save

    def save(self, *args, **kwargs):
        if isinstance(self, Report) and self.comment == "late comment" and not threads:
            threads.append(_in_thread(lambda: do_sign(Report.objects.get(pk=draft.pk), path, PASSWORD, reviewed),
                                      outcome, "sign"))
            # The signing waits on the row lock (the guard took it); without the lock it would finish here.
            if not _wait_for_a_lock_wait(5):
                threads[0].join(20)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(models.Model, "save", save)
    do_update_draft(Report.objects.get(pk=draft.pk), path, "late comment")
    monkeypatch.undo()
    threads[0].join(30)
    assert isinstance(outcome["sign"], ReportConflict) and str(outcome["sign"]) == DRAFT_CHANGED, outcome
    row = Report.objects.get(pk=draft.pk)
    assert row.status == ReportStatus.DRAFT and row.comment == "late comment" and row.signed_at is None
    assert not ReportDocument.objects.filter(report=row).exists()


# --- the signature is for the draft the signer reviewed ------------------------------------------------

def test_a_draft_prepared_again_by_a_colleague_is_not_signed_unseen(personas, colleague, media_root):
    """The reviewer's scenario: A opens the draft; B prepares it again from another job and blanks the
    comment; A's signature (from the page loaded before) is refused and A sees the draft as it is now."""
    case, a = personas["case"], personas["pathologist"]
    job1, job2 = job_with_result(case, n=400, seed=11), job_with_result(case, n=400, seed=99)
    draft = do_create_draft(case, job1, a, comment="reviewed by A")
    web = client_for(a)
    seen = page_fingerprint(web, case)
    do_create_draft(case, job2, colleague, comment="")
    page = web.post(f"/cases/{case.pk}/report/", {"step": "sign", "password": PASSWORD, "draft_fingerprint": seen},
                    follow=True)
    text = page.content.decode()
    assert "The draft changed since you opened it: review it again" in text
    row = Report.objects.get(pk=draft.pk)
    assert row.status == ReportStatus.DRAFT and row.job_id == job2.pk and row.signed_at is None
    assert not ReportDocument.objects.filter(report=row).exists()
    # Reviewed again (the page now shows job 2's numbers), it signs.
    now = re.search(r'name="draft_fingerprint" value="([0-9a-f]{64})"', text).group(1)
    assert now != seen and now == draft_fingerprint(row)
    web.post(f"/cases/{case.pk}/report/", {"step": "sign", "password": PASSWORD, "draft_fingerprint": now})
    row.refresh_from_db()
    assert row.status == ReportStatus.SIGNED and row.signed_by == a and row.job_id == job2.pk


def test_the_page_refuses_a_signature_without_a_fingerprint(personas, job):
    case, path = personas["case"], personas["pathologist"]
    draft = do_create_draft(case, job, path)
    page = client_for(path).post(f"/cases/{case.pk}/report/", {"step": "sign", "password": PASSWORD})
    assert page.status_code == 200 and "does not say which draft you reviewed" in page.content.decode()
    assert Report.objects.get(pk=draft.pk).status == ReportStatus.DRAFT


def test_the_api_signs_only_with_the_fingerprint_read(personas, colleague, job):
    case, path = personas["case"], personas["pathologist"]
    client = api(path)
    created = client.post("/api/reports/", {"case": case.pk, "job": job.pk, "comment": "mine"}, format="json").json()
    read = client.get(f"/api/reports/{created['id']}/").json()
    assert read["draft_fingerprint"] == created["draft_fingerprint"]
    assert re.fullmatch(r"[0-9a-f]{64}", read["draft_fingerprint"])
    listed = client.get("/api/reports/", {"case": case.pk}).json()["results"]
    assert listed[0]["draft_fingerprint"] == read["draft_fingerprint"]
    url = f"/api/reports/{read['id']}/sign/"

    missing = client.post(url, {"password": PASSWORD}, format="json")
    assert missing.status_code == 400 and "draft_fingerprint" in missing.json()
    blank = client.post(url, {"password": PASSWORD, "draft_fingerprint": ""}, format="json")
    assert blank.status_code == 400 and "draft_fingerprint" in blank.json()

    do_update_draft(Report.objects.get(pk=read["id"]), colleague, "changed by B")
    stale = client.post(url, {"password": PASSWORD, "draft_fingerprint": read["draft_fingerprint"]}, format="json")
    assert stale.status_code == 409 and stale.json()["detail"] == DRAFT_CHANGED
    assert Report.objects.get(pk=read["id"]).status == ReportStatus.DRAFT

    fresh = client.get(f"/api/reports/{read['id']}/").json()
    signed = client.post(url, {"password": PASSWORD, "draft_fingerprint": fresh["draft_fingerprint"]}, format="json")
    assert signed.status_code == 200 and signed.json()["status"] == "signed"
    assert signed.json()["comment"] == "changed by B"
    assert signed.json()["draft_fingerprint"] is None
    again = client.post(url, {"password": PASSWORD, "draft_fingerprint": fresh["draft_fingerprint"]}, format="json")
    assert again.status_code == 409 and "no longer a draft" in again.json()["detail"]
    schema = client.get("/api/schema/?format=json").json()
    assert "draft_fingerprint" in schema["components"]["schemas"]["Report"]["properties"]
    assert "draft_fingerprint" in schema["components"]["schemas"]["ReportSign"]["required"]


def test_a_patient_corrected_under_the_amendment_after_reading_refuses_the_signature(personas, job):
    """The fingerprint covers what the documents state of the patient and case too."""
    case, path = personas["case"], personas["pathologist"]
    v1 = do_sign(do_create_draft(case, job, path), path, PASSWORD)
    v2 = do_amend(v1, path, "name typo")
    seen = draft_fingerprint(Report.objects.get(pk=v2.pk))
    patient = case.patient
    patient.family_name = "Corrected-By-Someone-Else"
    patient.save()
    with pytest.raises(ReportConflict, match="changed since you opened it"):
        do_sign(Report.objects.get(pk=v2.pk), path, PASSWORD, seen)
    assert Report.objects.get(pk=v2.pk).status == ReportStatus.DRAFT
    do_sign(Report.objects.get(pk=v2.pk), path, PASSWORD, draft_fingerprint(Report.objects.get(pk=v2.pk)))
    assert Report.objects.get(pk=v2.pk).status == ReportStatus.SIGNED
