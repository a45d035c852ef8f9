"""The audit trail records views, downloads and changes of patient data: who, when, what."""

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from rest_framework.test import APIClient

from cases.models import Case, Patient, Slide
from cases.services import IngestSource, do_ingest_slide
from tests.conftest import shared_slide

pytestmark = pytest.mark.django_db


def entries(model, action, actor=None):
    qs = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model), action=action)
    return qs.filter(actor=actor) if actor else qs


@pytest.fixture
def client(personas):
    client = APIClient()
    client.force_login(personas["pathologist"])
    return client


def test_viewing_a_patient_is_logged_with_who_and_when(client, personas):
    patient = personas["case"].patient
    client.get(f"/api/patients/{patient.pk}/")
    entry = entries(Patient, LogEntry.Action.ACCESS, personas["pathologist"]).get()
    assert entry.object_pk == str(patient.pk) and entry.timestamp is not None


def test_listing_logs_an_access_per_record_shown(client, personas):
    client.get("/api/patients/")
    client.get("/api/cases/")
    assert entries(Patient, LogEntry.Action.ACCESS, personas["pathologist"]).count() == 1
    assert entries(Case, LogEntry.Action.ACCESS, personas["pathologist"]).count() == 1


def test_thumbnail_download_is_logged(client, personas):
    slide = do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))], case=personas["case"]).slide
    client.get(f"/api/slides/{slide.pk}/thumbnail/")
    assert entries(Slide, LogEntry.Action.ACCESS, personas["pathologist"]).count() == 1


def test_changes_record_actor_and_changed_fields(client, personas):
    patient = personas["case"].patient
    response = client.patch(f"/api/patients/{patient.pk}/", {"family_name": "Renamed"}, format="json")
    assert response.status_code == 200
    entry = entries(Patient, LogEntry.Action.UPDATE, personas["pathologist"]).get()
    assert entry.changes_dict["family_name"][1] == "Renamed"


def test_creation_via_api_is_logged(client, personas):
    client.post("/api/patients/", {"mrn": "A-1", "family_name": "New", "birth_date": "1990-02-03",
                                   "department": "dept-a"}, format="json")
    assert entries(Patient, LogEntry.Action.CREATE, personas["pathologist"]).count() == 1


def test_html_pages_log_access(personas):
    from django.test import Client

    web = Client()
    web.force_login(personas["pathologist"])
    assert web.get(f"/cases/{personas['case'].pk}/").status_code == 200
    assert entries(Case, LogEntry.Action.ACCESS, personas["pathologist"]).count() == 1
    assert entries(Patient, LogEntry.Action.ACCESS, personas["pathologist"]).count() == 1


def test_denied_requests_log_no_access(personas):
    client = APIClient()
    client.force_login(personas["outsider"])
    client.get(f"/api/patients/{personas['case'].patient.pk}/")
    assert entries(Patient, LogEntry.Action.ACCESS).count() == 0
