"""A stored slide moved to another case (API, admin, a duplicate upload filing an unfiled copy) is checked as at
upload: a DICOM file naming another PatientID or AccessionNumber than the target case's patient MRN and accession
stays where it is, and nothing changes (not even an audit entry). The identity is read from the stored file again
(the slide keeps none of it). sm_image.dcm (a public test file) names the fictitious PatientID AA01, accession
S19-1_A_1_1."""

import pydicom
import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from rest_framework.test import APIClient

from cases.models import Slide
from cases.services import IngestError, IngestSource, check_slide_case_change, do_ingest_slide
from tests.conftest import shared_slide
from tests.dicom_series import build_synthetic_series
from tests.factories import CaseFactory, make_user

pytestmark = pytest.mark.django_db

DICOM = "sm_image.dcm"


def ingest(path, **kwargs):
    return do_ingest_slide([IngestSource(name=path.name, path=path)], **kwargs).slide


def case_of(personas, mrn="AA01", accession="S19-1_A_1_1"):
    return CaseFactory(patient__department=personas["case"].department, patient__mrn=mrn, accession=accession)


def api(user):
    client = APIClient()
    client.force_login(user)
    return client


def slide_updates(slide):
    return LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Slide), object_pk=str(slide.pk),
                                   action=LogEntry.Action.UPDATE).count()


def move(client, slide, case):
    return client.patch(f"/api/slides/{slide.pk}/", {"case": case.pk if case else None}, format="json")


def test_the_api_does_not_move_a_dicom_into_another_patients_case(personas, media_root):
    own = case_of(personas)
    slide = ingest(shared_slide(DICOM), case=own)
    other = personas["case"]  # same department, another patient
    updates = slide_updates(slide)
    moved = move(api(personas["pathologist"]), slide, other)
    assert moved.status_code == 400
    message = moved.json()["case"][0]
    assert f"names PatientID 'AA01', not the MRN of the case's patient ('{other.patient.mrn}')" in message
    assert f"in case {other.accession}" in message and "the slide was not moved" in message
    slide.refresh_from_db()
    assert slide.case == own and slide_updates(slide) == updates


def test_the_api_does_not_move_a_dicom_into_a_case_of_another_accession(personas, media_root):
    slide = ingest(shared_slide(DICOM), case=case_of(personas))
    same_patient = CaseFactory(patient=slide.case.patient, accession="S26-99999")
    moved = move(api(personas["pathologist"]), slide, same_patient)
    assert moved.status_code == 400 and "names AccessionNumber 'S19-1_A_1_1'" in moved.json()["case"][0]
    slide.refresh_from_db()
    assert slide.case.accession == "S19-1_A_1_1"


def test_an_unfiled_dicom_is_filed_only_in_its_own_case(personas, media_root):
    slide = ingest(shared_slide(DICOM), uploaded_by=personas["pathologist"])
    client = api(personas["pathologist"])
    assert move(client, slide, personas["case"]).status_code == 400
    slide.refresh_from_db()
    assert slide.case is None
    own = case_of(personas, mrn=" aa01 ")  # the same identifier, as at upload
    assert move(client, slide, own).status_code == 200
    slide.refresh_from_db()
    assert slide.case == own


def test_a_dicom_is_unfiled_and_kept_in_its_case_without_a_check(personas, media_root):
    slide = ingest(shared_slide(DICOM), case=case_of(personas))
    client = api(personas["pathologist"])
    assert client.patch(f"/api/slides/{slide.pk}/", {"case": slide.case_id, "marker": "Ki67"},
                        format="json").status_code == 200
    assert move(client, slide, None).status_code == 200
    slide.refresh_from_db()
    assert slide.case is None and slide.marker == "Ki67"


def test_slides_naming_no_one_move_freely(personas, media_root, tmp_path):
    header = pydicom.dcmread(shared_slide(DICOM))
    del header.PatientID, header.AccessionNumber
    anonymous = tmp_path / "anonymous.dcm"
    header.save_as(anonymous)
    client = api(personas["pathologist"])
    own = case_of(personas)
    for path in (anonymous, shared_slide("small.svs")):
        slide = ingest(path, case=own)
        assert move(client, slide, personas["case"]).status_code == 200
        slide.refresh_from_db()
        assert slide.case == personas["case"]


def test_every_file_of_a_stored_series_is_read_again(personas, media_root, tmp_path):
    series = build_synthetic_series(tmp_path / "s", levels=2)
    header = pydicom.dcmread(series.files[0])  # the main file names no one: the other level does
    del header.PatientID, header.AccessionNumber
    header.save_as(series.files[0])
    slide = do_ingest_slide([IngestSource(name=f.name, path=f) for f in series.files]).slide
    assert slide.file_count == 2 and slide.original_name == series.files[0].name
    with pytest.raises(IngestError, match=r"names PatientID 'AA01'.*the slide was not moved"):
        check_slide_case_change(slide, personas["case"])
    check_slide_case_change(slide, case_of(personas))


def test_a_dicom_whose_stored_file_is_gone_is_not_moved(personas, media_root):
    slide = ingest(shared_slide(DICOM))
    header = pydicom.dcmread(slide.path)
    del header.PatientID, header.AccessionNumber  # would move freely, were it there
    header.save_as(slide.path)
    check_slide_case_change(slide, personas["case"])
    Slide.objects.filter(pk=slide.pk).update(file=f"{slide.file.name}.missing")
    slide.refresh_from_db()
    with pytest.raises(IngestError, match="cannot be read"):
        check_slide_case_change(slide, personas["case"])
    check_slide_case_change(slide, None)  # unfiling needs no check


def admin_form(slide, **changes):
    fields = {"original_name": slide.original_name, "file_count": slide.file_count, "mpp_x": slide.mpp_x or "",
              "mpp_y": slide.mpp_y or "", "mpp_source": slide.mpp_source, "objective_power": slide.objective_power or "",
              "marker": slide.marker, "qc": "{}", "qc_override_reason": "", "qc_override_by": "",
              "qc_override_at_0": "", "qc_override_at_1": "", "case": slide.case_id or ""}
    return {**fields, **changes}


def test_the_admin_does_not_move_a_dicom_into_another_patients_case(personas, media_root):
    own = case_of(personas)
    slide = ingest(shared_slide(DICOM), case=own)
    web = Client()
    web.force_login(make_user(None, username="root", is_staff=True, is_superuser=True))
    url = f"/admin/cases/slide/{slide.pk}/change/"
    updates = slide_updates(slide)
    refused = web.post(url, admin_form(slide, case=personas["case"].pk))
    assert refused.status_code == 200 and b"names PatientID" in refused.content
    assert b"the slide was not moved" in refused.content
    slide.refresh_from_db()
    assert slide.case == own and slide_updates(slide) == updates
    # Unfiled, then filed again in its own case: both allowed.
    assert web.post(url, admin_form(slide, case="")).status_code == 302
    slide.refresh_from_db()
    assert slide.case is None
    assert web.post(url, admin_form(slide, case=own.pk)).status_code == 302
    slide.refresh_from_db()
    assert slide.case == own
