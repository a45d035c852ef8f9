"""Every API answer and admin page that names a patient logs an ACCESS entry for that patient
(README, "Access control"), as the app's own pages do."""

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from rest_framework.test import APIClient

from cases.models import Case, Patient, Report
from tests.factories import CaseFactory, PatientFactory, ReportFactory

pytestmark = pytest.mark.django_db

SCORES = {"tps": {"value": 12.5, "category": "TPS 1-49%", "status": "computed", "near_cutoff": False, "uncertainty": ""},
          "adequacy": {"adequate": True}, "research_use": False}


def accessed(model, actor):
    return list(LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model),
                                        action=LogEntry.Action.ACCESS, actor=actor).values_list("object_pk", flat=True))


def api(user):
    client = APIClient()
    client.force_login(user)
    return client


def test_the_report_list_api_logs_each_patient_it_names_once(personas):
    patient = personas["case"].patient
    reports = [ReportFactory(case=case, scores=SCORES) for case in (personas["case"], CaseFactory(patient=patient))]
    pathologist = personas["pathologist"]
    answer = api(pathologist).get("/api/reports/")
    rows = answer.json()
    rows = rows.get("results", rows)
    assert [row["patient_mrn"] for row in rows] == [patient.mrn] * 2  # two rows naming the one patient
    assert accessed(Patient, pathologist) == [str(patient.pk)]
    assert sorted(accessed(Report, pathologist)) == sorted(str(r.pk) for r in reports)


def test_a_report_read_through_the_api_logs_its_patient(personas):
    report = ReportFactory(case=personas["case"], scores=SCORES)
    pathologist = personas["pathologist"]
    answer = api(pathologist).get(f"/api/reports/{report.pk}/")
    assert answer.json()["patient_mrn"] == report.case.patient.mrn
    assert accessed(Patient, pathologist) == [str(report.case.patient.pk)]
    assert accessed(Report, pathologist) == [str(report.pk)]


@pytest.fixture
def admin_web(personas):
    admin = personas["admin"]
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client = Client()
    client.force_login(admin)
    return client, admin


def test_the_bulk_delete_confirmation_logs_the_patients_it_lists(admin_web, personas):
    web, admin = admin_web
    patients = [PatientFactory(department=personas["case"].patient.department) for _ in range(2)]
    page = web.post("/admin/cases/patient/", {"action": "delete_selected",
                                              "_selected_action": [p.pk for p in patients]})
    assert page.status_code == 200 and all(p.mrn in page.content.decode() for p in patients)
    assert sorted(accessed(Patient, admin)) == sorted(str(p.pk) for p in patients)


def test_the_bulk_delete_confirmation_of_cases_logs_their_patients(admin_web, personas):
    web, admin = admin_web
    case = personas["case"]
    page = web.post("/admin/cases/case/", {"action": "delete_selected", "_selected_action": [case.pk]})
    assert page.status_code == 200 and case.accession in page.content.decode()
    assert accessed(Case, admin) == [str(case.pk)] and accessed(Patient, admin) == [str(case.patient.pk)]
