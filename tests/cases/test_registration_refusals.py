"""An MRN or accession number held by another department is refused without saying whose or where, and the
attempt is audited as a probe; whoever may see the holder is told which record it is (docs/security.md)."""

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from rest_framework.test import APIClient

from cases.choices import AssayClone, Indication
from cases.models import Case, Patient
from cases.services import ACCESSION_REFUSED, MRN_REFUSED
from tests.factories import CaseFactory, DepartmentFactory, PatientFactory

pytestmark = pytest.mark.django_db


def api(user):
    client = APIClient()
    client.force_login(user)
    return client


def web(user):
    client = Client()
    client.force_login(user)
    return client


def new_patient(mrn, department="dept-b"):
    return {"mrn": mrn, "family_name": "Probe", "birth_date": "1990-01-01", "department": department}


def new_case(accession, patient, department="dept-b"):
    return {"accession": accession, "patient": patient.pk, "department": department,
            "indication": Indication.LUNG_SQUAMOUS, "assay_clone": AssayClone.C22C3}


def probes(model, actor):
    return LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model),
                                   action=LogEntry.Action.ACCESS, actor=actor)


@pytest.fixture
def own_patient(personas):
    return PatientFactory(department=personas["outsider"].profile.departments.get())


def test_another_departments_mrn_is_refused_without_confirming_it(personas):
    outsider, patient = personas["outsider"], personas["case"].patient
    answer = api(outsider).post("/api/patients/", new_patient(patient.mrn), format="json")
    assert answer.status_code == 400
    assert answer.json() == {"mrn": [MRN_REFUSED]}
    assert Patient.objects.filter(mrn=patient.mrn).count() == 1


def test_the_refusal_is_the_same_whichever_department_holds_the_mrn(personas):
    elsewhere = PatientFactory(department=DepartmentFactory(code="dept-c"))
    client = api(personas["outsider"])
    answers = [client.post("/api/patients/", new_patient(mrn), format="json").json()
               for mrn in (personas["case"].patient.mrn, elsewhere.mrn)]
    assert answers[0] == answers[1] == {"mrn": [MRN_REFUSED]}


def test_a_refused_mrn_is_audited_as_a_probe_on_the_patient(personas):
    outsider, patient = personas["outsider"], personas["case"].patient
    api(outsider).post("/api/patients/", new_patient(patient.mrn), format="json")
    probe = probes(Patient, outsider).get()
    assert probe.object_pk == str(patient.pk) and probe.timestamp is not None
    assert probe.additional_data["mrn"] == patient.mrn and "refused" in probe.additional_data["probe"]


def test_moving_a_patient_onto_another_departments_mrn_is_refused_the_same(personas, own_patient):
    outsider, patient = personas["outsider"], personas["case"].patient
    answer = api(outsider).patch(f"/api/patients/{own_patient.pk}/", {"mrn": patient.mrn}, format="json")
    assert answer.status_code == 400 and answer.json() == {"mrn": [MRN_REFUSED]}
    assert probes(Patient, outsider).get().object_pk == str(patient.pk)
    kept = api(outsider).patch(f"/api/patients/{own_patient.pk}/", {"mrn": own_patient.mrn}, format="json")
    assert kept.status_code == 200  # a patient keeps its own MRN


def test_whoever_sees_the_patient_is_told_which_it_is(personas):
    pathologist, patient = personas["pathologist"], personas["case"].patient
    answer = api(pathologist).post("/api/patients/", new_patient(patient.mrn, "dept-a"), format="json")
    assert answer.status_code == 400
    assert f"patient {patient.pk}" in answer.json()["mrn"][0]
    assert not probes(Patient, pathologist).exists()


def test_the_mrn_length_is_still_checked(personas):
    answer = api(personas["outsider"]).post("/api/patients/", new_patient("9" * 65), format="json")
    assert answer.status_code == 400 and "64" in answer.json()["mrn"][0]


def test_another_departments_accession_is_refused_and_audited(personas, own_patient):
    outsider, case = personas["outsider"], personas["case"]
    answer = api(outsider).post("/api/cases/", new_case(case.accession, own_patient), format="json")
    assert answer.status_code == 400 and answer.json() == {"accession": [ACCESSION_REFUSED]}
    probe = probes(Case, outsider).get()
    assert probe.object_pk == str(case.pk) and probe.additional_data["accession"] == case.accession


def test_whoever_sees_the_case_is_told_which_it_is(personas):
    pathologist, case = personas["pathologist"], personas["case"]
    answer = api(pathologist).post("/api/cases/", new_case(case.accession, case.patient, "dept-a"), format="json")
    assert answer.status_code == 400 and f"case {case.pk}" in answer.json()["accession"][0]
    assert not probes(Case, pathologist).exists()


def test_the_patient_page_refuses_the_same_and_audits(personas):
    outsider, patient = personas["outsider"], personas["case"].patient
    dept_b = outsider.profile.departments.get()
    page = web(outsider).post("/patients/new/", {**new_patient(patient.mrn), "department": dept_b.pk,
                                                 "sex": "female"})
    body = page.content.decode()
    assert page.status_code == 200 and "cannot be registered here: ask the pathology office" in body
    assert "already exists" not in body and f"patient {patient.pk}" not in body
    assert probes(Patient, outsider).get().additional_data["mrn"] == patient.mrn


def test_the_patient_page_links_a_patient_the_user_sees(personas):
    patient = personas["case"].patient
    page = web(personas["pathologist"]).post("/patients/new/", {**new_patient(patient.mrn),
                                                                "department": patient.department.pk,
                                                                "sex": "female"})
    body = page.content.decode()
    assert f"patient {patient.pk}" in body and f'href="/cases/?q={patient.mrn}"' in body


def test_the_case_page_refuses_the_same_and_audits(personas, own_patient):
    outsider, case = personas["outsider"], personas["case"]
    page = web(outsider).post("/cases/new/", {**new_case(case.accession, own_patient),
                                              "department": own_patient.department.pk})
    body = page.content.decode()
    assert page.status_code == 200 and "cannot be registered here: ask the pathology office" in body
    assert "already exists" not in body and case.get_absolute_url() not in body
    assert probes(Case, outsider).get().object_pk == str(case.pk)


def test_the_case_page_links_a_case_the_user_sees(personas):
    case = personas["case"]
    other = CaseFactory(patient=case.patient)
    page = web(personas["pathologist"]).post("/cases/new/", {**new_case(other.accession, case.patient),
                                                             "department": case.department.pk})
    assert f'href="{other.get_absolute_url()}"' in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_number_registered_at_the_same_moment_is_a_409_not_a_500(personas, monkeypatch):
    """Two registrations of one MRN at once: both pass the check, the second meets the database's unique
    constraint. Simulated by letting the check pass for an MRN another department already holds."""
    from cases import serializers

    patient = PatientFactory(department=personas["pathologist"].profile.departments.get(), family_name="Holder")
    monkeypatch.setattr(serializers, "check_mrn_free", lambda mrn, user, instance=None: mrn)
    answer = api(personas["outsider"]).post("/api/patients/", new_patient(patient.mrn), format="json")
    assert answer.status_code == 409, answer.content
    assert "saved at the same moment" in answer.json()["detail"]
    assert patient.mrn not in answer.content.decode() and "Holder" not in answer.content.decode()
    assert Patient.objects.filter(mrn=patient.mrn).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_page_answers_a_number_registered_at_the_same_moment_with_a_form_error(personas, monkeypatch):
    from cases import forms

    patient = PatientFactory(department=personas["pathologist"].profile.departments.get(), family_name="Holder")
    # Both checks passed before the other request saved: the service's and the model form's own.
    monkeypatch.setattr(forms, "check_mrn_free", lambda mrn, user, instance=None: mrn)
    monkeypatch.setattr(forms.PatientForm, "validate_unique", lambda self: None)
    outsider = personas["outsider"]
    page = web(outsider).post("/patients/new/", {**new_patient(patient.mrn, outsider.profile.departments.get().pk),
                                                 "sex": "female"})
    assert page.status_code == 200 and "registered at the same moment" in page.content.decode()
    assert "Holder" not in page.content.decode() and Patient.objects.filter(mrn=patient.mrn).count() == 1
