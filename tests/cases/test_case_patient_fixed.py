"""A case stays with the patient its reports were signed for, even under an amendment.

A signed version is the record of the patient it names; clinicians read it through the case's patient
(cases.access.visible_reports). Moved to another patient under an open amendment, a case used to take the
signed version stating patient A (name, MRN, birth date) to patient B's clinicians and away from A's. The
move is refused (RecordLocked: 409 in the API, a form error in the admin) with how to proceed; corrections
of the same patient's identity still open under an amendment.
"""

import json

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory
from rest_framework.test import APIClient

from cases.choices import ReportStatus, Role
from cases.models import Case, RecordLocked
from cases.reports import do_amend, do_create_draft, do_sign
from tests.factories import PatientFactory, make_user
from tests.viewer import job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def job(personas, media_root):
    return job_with_result(personas["case"], n=400, seed=11)


@pytest.fixture
def patient_b(personas):
    patient = PatientFactory(department=personas["case"].patient.department)
    patient.clinicians.add(make_user(Role.CLINICIAN, username="clin_b"))
    return patient


def clinician_of(patient):
    return patient.clinicians.get()


def test_a_case_under_an_amendment_keeps_its_patient_and_its_readers(personas, job, patient_b):
    case, path = personas["case"], personas["pathologist"]
    patient_a = case.patient
    v1 = do_sign(do_create_draft(case, job, path), path, PASSWORD)
    do_amend(v1, path, "case filed under the wrong patient")

    response = api(path).patch(f"/api/cases/{case.pk}/", {"patient": patient_b.pk}, format="json")
    assert response.status_code == 409, response.content
    detail = response.json()["detail"]
    assert "stays with the patient its reports were signed for, even under an amendment" in detail
    assert f"MRN {patient_a.mrn}" in detail and "register a new case for the right patient" in detail
    with pytest.raises(RecordLocked, match="even under an amendment"):  # whoever calls save()
        moved = Case.objects.get(pk=case.pk)
        moved.patient = patient_b
        moved.save()
    admin_user = personas["admin"]
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    request = RequestFactory().post("/")
    request.user = admin_user
    form_class = site._registry[Case].get_form(request, case)
    form = form_class({"accession": case.accession, "patient": patient_b.pk, "department": case.department_id,
                       "indication": case.indication, "assay_clone": case.assay_clone, "specimen": case.specimen,
                       "status": case.status}, instance=case)
    assert not form.is_valid() and "even under an amendment" in str(form.errors)
    case.refresh_from_db()
    assert case.patient_id == patient_a.pk

    # v1 stays patient A's: A's clinician reads it, B's clinician never sees it.
    clin_a, clin_b = personas["clinician"], clinician_of(patient_b)
    fhir = api(clin_a).get(f"/api/reports/{v1.pk}/fhir/")
    assert fhir.status_code == 200
    assert json.loads(fhir.content)["entry"][0]["resource"]["subject"]["identifier"]["value"] == patient_a.mrn
    assert api(clin_a).get(f"/api/reports/{v1.pk}/pdf/").status_code == 200
    listed = api(clin_a).get("/api/reports/").json()["results"]
    assert [(r["id"], r["patient_mrn"]) for r in listed] == [(v1.pk, patient_a.mrn)]
    for kind in ("pdf", "fhir"):
        assert api(clin_b).get(f"/api/reports/{v1.pk}/{kind}/").status_code == 404
    assert api(clin_b).get("/api/reports/").json()["results"] == []


def test_a_superseded_version_keeps_the_patient_fixed_too(personas, job, patient_b):
    case, path = personas["case"], personas["pathologist"]
    v1 = do_sign(do_create_draft(case, job, path), path, PASSWORD)
    v2 = do_sign(do_amend(v1, path, "recount"), path, PASSWORD)
    do_amend(v2, path, "another")
    v1.refresh_from_db()
    assert v1.status == ReportStatus.AMENDED
    response = api(path).patch(f"/api/cases/{case.pk}/", {"patient": patient_b.pk}, format="json")
    assert response.status_code == 409 and "v1, v2" in response.json()["detail"]


def test_before_any_signature_the_case_moves_and_its_report_goes_to_the_new_patient(personas, job, patient_b):
    case, path = personas["case"], personas["pathologist"]
    draft = do_create_draft(case, job, path)
    assert api(path).patch(f"/api/cases/{case.pk}/", {"patient": patient_b.pk}, format="json").status_code == 200
    do_sign(do_create_draft(Case.objects.get(pk=case.pk), job, path), path, PASSWORD)
    assert api(clinician_of(patient_b)).get(f"/api/reports/{draft.pk}/pdf/").status_code == 200
    assert api(personas["clinician"]).get(f"/api/reports/{draft.pk}/pdf/").status_code == 404


def test_the_same_patients_identity_is_still_corrected_under_an_amendment(personas, job):
    case, path = personas["case"], personas["pathologist"]
    do_amend(do_sign(do_create_draft(case, job, path), path, PASSWORD), path, "MRN typo")
    client = api(path)
    assert client.patch(f"/api/patients/{case.patient.pk}/", {"mrn": "MRN-FIXED"}, format="json").status_code == 200
    assert client.patch(f"/api/cases/{case.pk}/", {"accession": "S26-FIXED"}, format="json").status_code == 200
