"""A DICOM file says whose it is: filed in a case, its PatientID must be the case's patient's MRN and its
AccessionNumber the case's accession (when the file names them), else the upload is refused and nothing
changes. sm_image.dcm (a public test file) names the fictitious PatientID AA01, accession S19-1_A_1_1."""

import pydicom
import pytest

from cases.models import Slide
from cases.services import IngestError, IngestSource, do_ingest_slide
from tests.conftest import shared_slide, stored_files
from tests.dicom_series import build_synthetic_series
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db

DICOM = "sm_image.dcm"


def ingest(path, **kwargs):
    return do_ingest_slide([IngestSource(name=path.name, path=path)], **kwargs)


def case_of(department, mrn="AA01", accession="S19-1_A_1_1"):
    return CaseFactory(patient__department=department, patient__mrn=mrn, accession=accession)


def test_a_dicom_of_another_patient_is_refused(personas, media_root):
    case = personas["case"]
    with pytest.raises(IngestError, match=rf"names PatientID 'AA01', not the MRN of the case's patient "
                                          rf"\('{case.patient.mrn}'\) in case {case.accession}"):
        ingest(shared_slide(DICOM), case=case, uploaded_by=personas["pathologist"])
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_a_dicom_of_another_accession_is_refused(personas, media_root):
    case = case_of(personas["case"].department, accession="S26-99999")
    with pytest.raises(IngestError, match=r"names AccessionNumber 'S19-1_A_1_1', not the case's accession"):
        ingest(shared_slide(DICOM), case=case)
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_a_dicom_of_the_cases_patient_and_accession_is_stored(personas, media_root):
    case = case_of(personas["case"].department, mrn="aa01")  # the same identifier, other case
    assert ingest(shared_slide(DICOM), case=case).slide.case == case


def test_a_dicom_naming_no_one_is_stored_in_any_case(personas, media_root, tmp_path):
    header = pydicom.dcmread(shared_slide(DICOM))
    del header.PatientID, header.AccessionNumber
    path = tmp_path / "anonymous.dcm"
    header.save_as(path)
    assert ingest(path, case=personas["case"]).slide.case == personas["case"]


def test_a_stored_unfiled_copy_is_not_filed_in_another_patients_case(personas, media_root):
    unfiled = ingest(shared_slide(DICOM)).slide
    with pytest.raises(IngestError, match="names PatientID 'AA01'"):
        ingest(shared_slide(DICOM), case=personas["case"])
    unfiled.refresh_from_db()
    assert unfiled.case is None and Slide.objects.count() == 1


def test_a_series_whose_files_name_two_patients_is_refused(media_root, tmp_path):
    series = build_synthetic_series(tmp_path / "s", levels=2)
    header = pydicom.dcmread(series.files[1])
    header.PatientID = "BB02"
    header.save_as(series.files[1])
    with pytest.raises(IngestError, match=r"the series: the files name different PatientIDs: 'AA01' "
                                          r"\(synthetic-level0.dcm\) and 'BB02' \(synthetic-level1.dcm\)"):
        do_ingest_slide([IngestSource(name=f.name, path=f) for f in series.files])
    assert Slide.objects.count() == 0 and stored_files(media_root) == []
