"""A comment save against a signing of the same draft.

A request that loaded the draft before someone signed it never writes its stale copy over the signed
version: do_update_draft locks the row, reads the status from the locked copy and writes the comment
only (refused: ReportConflict, 409 in the API, a message on the page); Report.save reads its guard under
the row lock and its UPDATE matches only a row still in the status the guard read, so no other path that
saves an object loaded earlier overwrites a signed row either.
"""

import threading

import pytest
from django.db import models
from rest_framework.test import APIClient

from cases.choices import ReportStatus
from cases.models import Report, ReportConflict, ReportDocument
from cases.reports import do_amend, do_create_draft, do_sign, do_update_draft
from tests.viewer import client_for, job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def job(personas, media_root):
    return job_with_result(personas["case"], n=400, seed=11)


def _sign_inside_the_comment_save(monkeypatch, report_pk, user):
    """The reviewer's interleaving on one connection: a signing runs between the comment save's guard
    (Report.save) and its UPDATE (Model.save)."""
    real_save, fired = models.Model.save, []

    def save(self, *args, **kwargs):
        if isinstance(self, Report) and self.comment == "late comment" and not fired:
            fired.append(True)
            do_sign(Report.objects.get(pk=report_pk), user, PASSWORD)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(models.Model, "save", save)
    return fired


def test_a_signing_between_the_guard_and_the_write_refuses_the_comment(personas, job, monkeypatch):
    path = personas["pathologist"]
    draft = do_create_draft(personas["case"], job, path, comment="as prepared")
    stale = Report.objects.get(pk=draft.pk)
    fired = _sign_inside_the_comment_save(monkeypatch, draft.pk, path)
    with pytest.raises(ReportConflict, match="changed while it was being saved"):
        do_update_draft(stale, path, "late comment")
    monkeypatch.undo()
    assert fired
    # On one connection the refusal rolls the signing back with it (between two, the signing commits on its
    # own: test_a_comment_save_waits_for_a_signing_and_is_refused): no signed-looking draft is left, no
    # documents of a version that is not signed, and the draft signs normally.
    row = Report.objects.get(pk=draft.pk)
    assert row.status == ReportStatus.DRAFT and row.signed_at is None and row.comment == "as prepared"
    assert not ReportDocument.objects.filter(report=row).exists()
    do_sign(row, path, PASSWORD)
    row.refresh_from_db()
    assert row.status == ReportStatus.SIGNED and ReportDocument.objects.filter(report=row).count() == 2


def test_an_amendment_signed_between_the_guard_and_the_write_refuses_the_comment(personas, job, monkeypatch):
    path = personas["pathologist"]
    v1 = do_sign(do_create_draft(personas["case"], job, path), path, PASSWORD)
    v2 = do_amend(v1, path, "recount")
    stale = Report.objects.get(pk=v2.pk)
    _sign_inside_the_comment_save(monkeypatch, v2.pk, path)
    with pytest.raises(ReportConflict):
        do_update_draft(stale, path, "late comment")
    monkeypatch.undo()
    versions = list(Report.objects.filter(case=personas["case"]).order_by("version").values_list("version", "status"))
    assert versions == [(1, ReportStatus.SIGNED), (2, ReportStatus.DRAFT)]  # v1 stays the clinicians' report
    do_sign(Report.objects.get(pk=v2.pk), path, PASSWORD)
    versions = list(Report.objects.filter(case=personas["case"]).order_by("version").values_list("version", "status"))
    assert versions == [(1, ReportStatus.AMENDED), (2, ReportStatus.SIGNED)]


def test_a_comment_on_a_version_signed_since_is_409_in_the_api_and_a_message_on_the_page(personas, job):
    path = personas["pathologist"]
    draft = do_create_draft(personas["case"], job, path, comment="as signed")
    stale = Report.objects.get(pk=draft.pk)
    do_sign(draft, path, PASSWORD)
    with pytest.raises(ReportConflict, match="no longer a draft: it was signed by"):
        do_update_draft(stale, path, "late")
    response = api(path).post(f"/api/reports/{draft.pk}/comment/", {"comment": "late"}, format="json")
    assert response.status_code == 409 and "The comment was not saved" in response.json()["detail"]
    web = client_for(path)
    page = web.post(f"/cases/{personas['case'].pk}/report/", {"step": "comment", "comment": "late"}, follow=True)
    text = page.content.decode()
    assert "Version 1 is no longer a draft" in text and "The comment was not saved" in text
    assert 'id="amend-form"' in text  # the page shows the report as it is now: signed
    row = Report.objects.get(pk=draft.pk)
    assert row.status == ReportStatus.SIGNED and row.comment == "as signed"
    assert ReportDocument.objects.filter(report=row).count() == 2


def test_a_stale_object_saved_directly_never_overwrites_a_signed_row(personas, job):
    from cases.models import ImmutableReport

    path = personas["pathologist"]
    draft = do_create_draft(personas["case"], job, path)
    stale = Report.objects.get(pk=draft.pk)
    do_sign(draft, path, PASSWORD)
    stale.comment = "x"
    with pytest.raises(ImmutableReport):
        stale.save()
    with pytest.raises(ImmutableReport):
        stale.delete()  # it still thinks it is a draft
    assert Report.objects.get(pk=draft.pk).status == ReportStatus.SIGNED


# --- between two connections (PostgreSQL; SQLite serialises writers anyway) ---------------------------

def _needs_server_database():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs a server database with real concurrent connections")


def _wait_for_a_lock_wait(seconds=10.0) -> bool:
    """Whether another connection is waiting on a row lock (within `seconds`)."""
    import time

    from django.db import connection

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.05)
    return False


def _in_thread(target, outcome, key):
    from django.db import connections

    def run():
        try:
            outcome[key] = target()
        except Exception as exc:  # noqa: BLE001 - the outcome is asserted by the test
            outcome[key] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_comment_save_waits_for_a_signing_and_is_refused(personas, media_root):
    """The comment request loaded the draft before the signing; its save comes while the signing holds the
    row. It waits, then finds the version signed: refused (409), and the signed version stays as signed."""
    _needs_server_database()
    path = personas["pathologist"]
    job = job_with_result(personas["case"], n=200, seed=3)
    draft = do_create_draft(personas["case"], job, path, comment="as signed")
    stale = Report.objects.get(pk=draft.pk)
    inside, release, outcome = threading.Event(), threading.Event(), {}
    real_sign = Report.sign

    def slow_sign(self, user, password):  # do_sign holds the row lock here
        inside.set()
        release.wait(20)
        return real_sign(self, user, password)

    Report.sign = slow_sign
    try:
        signer = _in_thread(lambda: do_sign(draft, path, PASSWORD), outcome, "sign")
        assert inside.wait(20)
        commenter = _in_thread(lambda: do_update_draft(stale, path, "late comment"), outcome, "comment")
        assert _wait_for_a_lock_wait()  # the comment save waits for the signing's row lock
        release.set()
        signer.join(30)
        commenter.join(30)
    finally:
        Report.sign = real_sign
        release.set()
    assert isinstance(outcome["sign"], Report), outcome
    assert isinstance(outcome["comment"], ReportConflict), outcome
    row = Report.objects.get(pk=draft.pk)
    assert row.status == ReportStatus.SIGNED and row.signed_by == path and row.comment == "as signed"
    assert ReportDocument.objects.filter(report=row).count() == 2
