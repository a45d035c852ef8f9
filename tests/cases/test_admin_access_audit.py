"""The admin's pages of patient data log ACCESS entries like the app's own (README, "Access control")."""

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from cases.models import Case, Patient
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(personas):
    admin = personas["admin"]
    admin.is_staff = admin.is_superuser = True
    admin.save()
    return admin


@pytest.fixture
def web(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def accessed(model, actor):
    return set(LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model),
                                       action=LogEntry.Action.ACCESS, actor=actor).values_list("object_pk", flat=True))


def test_patient_list_logs_each_patient_shown(web, admin_user, personas):
    other = CaseFactory(patient__department=personas["case"].patient.department).patient
    page = web.get("/admin/cases/patient/")
    assert page.status_code == 200 and other.mrn.encode() in page.content
    assert accessed(Patient, admin_user) == {str(personas["case"].patient.pk), str(other.pk)}


def test_patient_search_logs_only_the_rows_found(web, admin_user, personas):
    other = CaseFactory().patient
    assert web.get("/admin/cases/patient/", {"q": other.mrn}).status_code == 200
    assert accessed(Patient, admin_user) == {str(other.pk)}


def test_case_list_logs_the_patients_it_names(web, admin_user, personas):
    case = personas["case"]
    assert web.get("/admin/cases/case/").status_code == 200
    assert accessed(Case, admin_user) == {str(case.pk)} and accessed(Patient, admin_user) == {str(case.patient.pk)}


def test_patient_page_and_history_are_logged(web, admin_user, personas):
    patient = personas["case"].patient
    assert web.get(f"/admin/cases/patient/{patient.pk}/change/").status_code == 200
    assert web.get(f"/admin/cases/patient/{patient.pk}/history/").status_code == 200
    entries = LogEntry.objects.filter(action=LogEntry.Action.ACCESS, actor=admin_user, object_pk=str(patient.pk),
                                      content_type=ContentType.objects.get_for_model(Patient))
    assert entries.count() == 2


def test_a_refused_list_logs_nothing(personas):
    """A staff member without the view permission sees no rows, so nothing is logged for them."""
    clerk = personas["annotator"]
    clerk.is_staff = True
    clerk.save()
    client = Client()
    client.force_login(clerk)
    assert client.get("/admin/cases/patient/").status_code == 403
    assert client.get(f"/admin/cases/patient/{personas['case'].patient.pk}/change/").status_code == 403
    assert not accessed(Patient, clerk)
