"""FHIR R4 ServiceRequest in over REST (service users only), validated with fhir.resources, and the
admin-only delivery/inbound lists. Patients here are SYNTHETIC."""

import copy
import json

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from cases.models import Case, Patient
from integration.models import InboundMessage, OutboxMessage
from tests.factories import DepartmentFactory, make_user

pytestmark = pytest.mark.django_db
URL = "/api/integration/fhir/ServiceRequest"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"

SERVICE_REQUEST = {
    "resourceType": "ServiceRequest",
    "status": "active",
    "intent": "order",
    "contained": [
        {"resourceType": "Patient", "id": "p", "identifier": [{"system": "urn:pdl1:mrn", "value": "F-1001"}],
         "name": [{"family": "Example", "given": ["Ada", "M"]}], "gender": "female", "birthDate": "1958-03-02"},
        {"resourceType": "Specimen", "id": "s", "type": {"text": "Core biopsy"},
         "collection": {"bodySite": {"text": "Right lower lobe of lung"}}},
    ],
    "identifier": [{"type": {"coding": [{"system": V2, "code": "PLAC"}]}, "value": "PLC-5"},
                   {"type": {"coding": [{"system": V2, "code": "ACSN"}]}, "value": "S26-F0001"}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "85147-7"}], "text": "PD-L1 22C3"},
    "subject": {"reference": "#p"},
    "specimen": [{"reference": "#s"}],
    "reasonCode": [{"text": "Lung squamous cell carcinoma"}],
}


@pytest.fixture
def service(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"  # required with orders (integration.E003)
    DepartmentFactory(code="pathology")
    user = make_user(None, username="his-interface")
    user.groups.add(Group.objects.get(name="integration"))  # made by the integration migration
    client = APIClient()
    client.force_authenticate(user)
    return client


def post(client, body, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.generic("POST", URL, data, content_type="application/fhir+json", **headers)


def test_service_request_creates_patient_and_case(service):
    response = post(service, SERVICE_REQUEST)
    assert response.status_code == 201, response.content
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "information"
    patient = Patient.objects.get(mrn="F-1001")
    assert (patient.family_name, patient.given_name, str(patient.birth_date), patient.sex) == (
        "Example", "Ada M", "1958-03-02", "female")
    case = Case.objects.get(accession="S26-F0001")  # ACSN before PLAC
    assert (case.patient, case.assay_clone, case.indication, case.specimen) == (
        patient, "22C3", "lung_squamous", "Core biopsy, Right lower lobe of lung")
    kept = InboundMessage.objects.get()
    assert kept.channel == "fhir" and kept.sender == "his-interface" and kept.outcome == "AA"
    assert bytes(kept.raw) == json.dumps(SERVICE_REQUEST).encode()


def test_repeat_with_the_same_idempotency_key_gets_the_same_answer(service):
    first = post(service, SERVICE_REQUEST, HTTP_IDEMPOTENCY_KEY="req-1")
    again = post(service, SERVICE_REQUEST, HTTP_IDEMPOTENCY_KEY="req-1")
    assert (first.status_code, again.status_code) == (201, 201) and first.content == again.content
    assert InboundMessage.objects.get().repeats == 1 and Case.objects.count() == 1
    # A new request (new key) for the same order updates: 200.
    changed = copy.deepcopy(SERVICE_REQUEST)
    changed["code"] = {"text": "PD-L1 SP263"}
    assert post(service, changed, HTTP_IDEMPOTENCY_KEY="req-2").status_code == 200
    assert Case.objects.get().assay_clone == "SP263"


@pytest.mark.parametrize("change, status, words", [
    (lambda r: r.update(status="revoked"), 400, "status 'revoked'"),
    (lambda r: r.update(subject={"reference": 42}), 400, "not a valid FHIR R4 ServiceRequest"),
    (lambda r: r.pop("intent"), 400, "not a valid FHIR R4 ServiceRequest"),
    (lambda r: r.update(identifier=[]), 422, "no accession"),
    (lambda r: r["contained"][0].update(identifier=[{"system": "urn:other", "value": "1"}]), 422, "urn:pdl1:mrn"),
    (lambda r: r.update(reasonCode=[{"text": "melanoma"}]), 422, "indication 'melanoma'"),
    (lambda r: r["contained"][0].pop("birthDate"), 422, "a new patient needs birth date"),
    (lambda r: r["contained"][0]["name"][0].update(family="Ex\x00ample"), 400, "NUL characters"),
])
def test_a_bad_service_request_is_refused_with_an_operation_outcome(service, change, status, words):
    body = copy.deepcopy(SERVICE_REQUEST)
    change(body)
    response = post(service, body)
    assert response.status_code == status, response.content
    issue = response.json()["issue"][0]
    assert issue["severity"] == "error" and words in issue["diagnostics"]
    assert Patient.objects.count() == 0 and Case.objects.count() == 0
    assert InboundMessage.objects.get().outcome in ("AE", "AR")


def test_not_json_and_too_large(service, settings):
    assert post(service, b"<xml/>").status_code == 400
    settings.PDL1_INTEGRATION_MAX_MESSAGE_BYTES = 100
    assert post(service, SERVICE_REQUEST).status_code == 413
    assert Case.objects.count() == 0


def test_only_service_users_submit_orders(personas):
    for name in ("pathologist", "admin", "clinician"):
        client = APIClient()
        client.force_authenticate(personas[name])
        assert post(client, SERVICE_REQUEST).status_code == 403, name
    assert post(APIClient(), SERVICE_REQUEST).status_code == 401
    assert InboundMessage.objects.count() == 0


def test_admins_see_deliveries_and_inbound_messages(personas, service):
    post(service, SERVICE_REQUEST)
    admin = APIClient()
    admin.force_authenticate(personas["admin"])
    inbound = admin.get("/api/integration/inbound/").json()["results"]
    assert [(m["channel"], m["outcome"], m["accession"]) for m in inbound] == [("fhir", "AA", "S26-F0001")]
    assert admin.get("/api/integration/outbox/").json()["results"] == []
    assert OutboxMessage.objects.count() == 0
    pathologist = APIClient()
    pathologist.force_authenticate(personas["pathologist"])
    assert pathologist.get("/api/integration/outbox/").status_code == 403
