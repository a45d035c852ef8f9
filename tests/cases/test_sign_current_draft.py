"""Signing states what the viewer shows at that moment: a draft that no longer matches its analysis
(corrections or regions saved since, a cut-off table withdrawn, the slide moved to another case or
its marker changed) is refused until it is prepared again; a slide that a signed report states
cannot be moved to another case."""

import pytest
from rest_framework.test import APIClient

from analysis.choices import Marker
from cases.choices import ReportStatus
from cases.models import CutoffTable, RecordLocked, ReportError
from cases.reports import do_amend, do_create_draft, do_sign
from tests.factories import CaseFactory
from tests.viewer import job_with_result
from viewer.corrections import do_add_correction
from viewer.regions import do_add_region
from viewer.scores import job_scores

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


@pytest.fixture
def job(personas, media_root):
    return job_with_result(personas["case"], n=400, seed=11)


@pytest.fixture
def draft(personas, job):
    return do_create_draft(personas["case"], job, personas["pathologist"])


def negatives(job, how_many):
    from viewer.stores import job_store

    labels = job_store(job).take(list(range(len(job_store(job))))).labels
    return [int(i) for i in (labels == 2).nonzero()[0][:how_many]]


def test_corrections_after_the_draft_block_signing_until_it_is_prepared_again(personas, job, draft):
    pathologist = personas["pathologist"]
    for version, index in enumerate(negatives(job, 3)):
        do_add_correction(job, pathologist, {"base_version": version, "op": "reclassify", "detection": index,
                                             "label": 1})
    with pytest.raises(ReportError, match=r"changed after this draft was prepared \(the counts"):
        do_sign(draft, pathologist, PASSWORD)
    draft.refresh_from_db()
    assert draft.status == ReportStatus.DRAFT and draft.signed_at is None

    draft = do_create_draft(personas["case"], job, pathologist)
    signed = do_sign(draft, pathologist, PASSWORD)
    shown = job_scores(job)
    assert signed.status == ReportStatus.SIGNED and signed.scores["corrections_version"] == 3
    assert signed.scores["counts"]["positive"] == shown["counts"]["positive"]
    assert signed.scores["tps"]["value"] == pytest.approx(shown["tps"])


def test_a_region_drawn_after_the_draft_blocks_signing(personas, job, draft):
    do_add_region(job, personas["pathologist"], {"base_version": 0, "kind": "tumour",
                                                  "vertices": [[0, 0], [3000, 0], [3000, 3000], [0, 3000]]})
    with pytest.raises(ReportError, match="the counts"):
        do_sign(draft, personas["pathologist"], PASSWORD)


def test_a_cutoff_table_withdrawn_after_the_draft_blocks_signing(personas, draft):
    case = personas["case"]
    CutoffTable.objects.filter(assay_clone=case.assay_clone, indication=case.indication).update(approved=False)
    with pytest.raises(ReportError, match="the TPS, its interval or its cut-off table"):
        do_sign(draft, personas["pathologist"], PASSWORD)
    redone = do_create_draft(case, draft.job, personas["pathologist"])
    assert redone.scores["research_use"] and not redone.scores["tps"]["approved"]


def test_an_unchanged_draft_signs(personas, draft):
    assert do_sign(draft, personas["pathologist"], PASSWORD).status == ReportStatus.SIGNED


def test_a_slide_moved_to_another_case_after_the_draft_is_not_signed_for_the_first(personas, job, draft):
    other = CaseFactory(patient=personas["case"].patient)
    job.slide.case = other
    job.slide.save()
    with pytest.raises(ReportError, match="a finished job on a slide of this case"):
        do_sign(draft, personas["pathologist"], PASSWORD)


def test_a_slide_that_a_signed_report_states_cannot_move_to_another_case(personas, job, draft):
    do_sign(draft, personas["pathologist"], PASSWORD)
    other = CaseFactory(patient=personas["case"].patient)
    client = APIClient()
    client.force_login(personas["pathologist"])
    response = client.patch(f"/api/slides/{job.slide.pk}/", {"case": other.pk}, format="json")
    assert response.status_code == 409 and "stated by the signed report" in response.json()["detail"]
    job.slide.refresh_from_db()
    assert job.slide.case_id == personas["case"].pk
    # An amendment of that report still scores the same slide of the same case.
    amendment = do_amend(draft, personas["pathologist"], "re-read")
    assert amendment.job_id == job.pk
    job.slide.case = other  # the shell, the admin: the model refuses too
    with pytest.raises(RecordLocked, match="stays with that case"):
        job.slide.save()


def test_a_slide_without_a_signed_report_can_be_refiled(personas, job):
    other = CaseFactory(patient=personas["case"].patient)
    client = APIClient()
    client.force_login(personas["pathologist"])
    assert client.patch(f"/api/slides/{job.slide.pk}/", {"case": other.pk}, format="json").status_code == 200
    job.slide.refresh_from_db()
    assert job.slide.case_id == other.pk


def test_a_slide_stained_for_another_marker_makes_no_pdl1_report(personas, media_root):
    ki67 = job_with_result(personas["case"], n=100, seed=12, marker=Marker.KI67)
    with pytest.raises(ReportError, match="stained for Ki67, not PD-L1"):
        do_create_draft(personas["case"], ki67, personas["pathologist"])


def test_a_marker_changed_after_the_draft_blocks_signing(personas, job, draft):
    job.slide.marker = Marker.HE
    job.slide.save()
    with pytest.raises(ReportError, match="stained for H&E, not PD-L1"):
        do_sign(draft, personas["pathologist"], PASSWORD)


@pytest.mark.django_db(transaction=True)
def test_corrections_wait_while_a_report_is_being_signed(personas, media_root):
    """Between the draft check and the stored documents nothing may change what the report draws (PostgreSQL:
    SQLite serialises writers anyway)."""
    import threading

    from django.db import DatabaseError, connection, connections, transaction

    from cases.models import Report
    from viewer.models import CorrectionSet

    if connection.vendor != "postgresql":
        pytest.skip("needs a server database with real concurrent connections")
    job = job_with_result(personas["case"], n=200, seed=3)
    draft = do_create_draft(personas["case"], job, personas["pathologist"])
    inside, release, outcome = threading.Event(), threading.Event(), {}
    real_sign = Report.sign

    def slow_sign(self, user, password):
        inside.set()
        release.wait(10)
        return real_sign(self, user, password)

    def sign():
        try:
            do_sign(draft, personas["pathologist"], PASSWORD)
            outcome["signed"] = True
        finally:
            connections.close_all()

    Report.sign = slow_sign
    try:
        signer = threading.Thread(target=sign)
        signer.start()
        assert inside.wait(10)
        with pytest.raises(DatabaseError), transaction.atomic():  # a correction save would have to wait
            CorrectionSet.objects.select_for_update(nowait=True).get(job=job)
        release.set()
        signer.join(10)
    finally:
        Report.sign = real_sign
        release.set()
    assert outcome == {"signed": True}
