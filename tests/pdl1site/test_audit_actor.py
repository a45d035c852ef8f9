"""Changes and PHI access through the API name their user whatever the authentication (token too)."""

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.models import Patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def token_client(personas):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=personas['pathologist']).key}")
    return client


def patient_entries(action):
    return LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Patient), action=action)


def test_token_change_is_audited_with_its_user(token_client, personas):
    patient = personas["case"].patient
    response = token_client.patch(f"/api/patients/{patient.pk}/", {"family_name": "Renamed"}, format="json")
    assert response.status_code == 200
    (entry,) = [e for e in patient_entries(LogEntry.Action.UPDATE) if "family_name" in e.changes_dict]
    assert entry.actor == personas["pathologist"] and entry.changes_dict["family_name"][1] == "Renamed"


def test_token_creation_and_phi_access_are_audited_with_their_user(token_client, personas):
    created = token_client.post("/api/patients/", {"mrn": "T-1", "family_name": "New", "birth_date": "1990-02-03",
                                                   "department": "dept-a"}, format="json")
    assert created.status_code == 201
    assert patient_entries(LogEntry.Action.CREATE).get(object_pk=str(created.json()["id"])).actor == personas["pathologist"]
    assert token_client.get(f"/api/patients/{personas['case'].patient.pk}/").status_code == 200
    accesses = patient_entries(LogEntry.Action.ACCESS)
    assert accesses.exists() and set(accesses.values_list("actor", flat=True)) == {personas["pathologist"].pk}


def test_anonymous_request_still_has_no_actor(personas):
    """The lazy actor stays None for a request nobody authenticated (no user is invented)."""
    assert APIClient().get(f"/api/patients/{personas['case'].patient.pk}/").status_code == 401
    assert not patient_entries(LogEntry.Action.ACCESS).exists()
