"""Role × endpoint permission matrix for the clinical-record API.

Each cell is the HTTP status a persona gets; objects of another department answer 404 (their
existence is not disclosed), endpoints outside a role answer 403, anonymous callers 401.
"""

import pytest
from rest_framework.test import APIClient

from cases.choices import ReportStatus
from cases.services import IngestSource, do_ingest_slide
from tests.conftest import shared_slide
from tests.factories import ReportFactory

PERSONAS = ["pathologist", "annotator", "clinician", "admin", "outsider", "norole", "anonymous"]


@pytest.fixture
def world(personas):
    case = personas["case"]
    slide = do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))], case=case).slide
    draft = ReportFactory(case=case, version=1, status=ReportStatus.DRAFT)
    signed = ReportFactory(case=case, version=2, status=ReportStatus.SIGNED)
    return {**personas, "slide": slide, "draft": draft, "signed": signed}


def client_for(world, persona):
    client = APIClient()
    if persona != "anonymous":
        client.force_authenticate(world[persona])
    return client


def _urls(w):
    return {
        "patient-list": f"/api/patients/",
        "patient-detail": f"/api/patients/{w['case'].patient.pk}/",
        "case-list": "/api/cases/",
        "case-detail": f"/api/cases/{w['case'].pk}/",
        "slide-list": "/api/slides/",
        "slide-detail": f"/api/slides/{w['slide'].pk}/",
        "slide-thumbnail": f"/api/slides/{w['slide'].pk}/thumbnail/",
        "pseudo-slide-detail": f"/api/pseudo-slides/{w['slide'].pseudo_id}/",
        "pseudo-slide-thumbnail": f"/api/pseudo-slides/{w['slide'].pseudo_id}/thumbnail/",
        "report-draft": f"/api/reports/{w['draft'].pk}/",
        "report-signed": f"/api/reports/{w['signed'].pk}/",
    }


#                          pathologist annotator clinician admin outsider norole anonymous
GET_MATRIX = {
    "patient-list":           (200, 403, 403, 200, 200, 403, 401),
    "patient-detail":         (200, 403, 403, 200, 404, 403, 401),
    "case-list":              (200, 403, 403, 200, 200, 403, 401),
    "case-detail":            (200, 403, 403, 200, 404, 403, 401),
    "slide-list":             (200, 403, 403, 200, 200, 403, 401),
    "slide-detail":           (200, 403, 403, 200, 404, 403, 401),
    "slide-thumbnail":        (200, 403, 403, 200, 404, 403, 401),
    "pseudo-slide-detail":    (200, 200, 403, 200, 404, 403, 401),
    "pseudo-slide-thumbnail": (200, 200, 403, 200, 404, 403, 401),
    "report-draft":           (200, 403, 404, 200, 404, 403, 401),
    "report-signed":          (200, 403, 200, 200, 404, 403, 401),
}


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", list(GET_MATRIX))
def test_get_matrix(world, endpoint):
    url = _urls(world)[endpoint]
    got = {p: client_for(world, p).get(url).status_code for p in PERSONAS}
    assert got == dict(zip(PERSONAS, GET_MATRIX[endpoint]))


@pytest.mark.django_db
def test_lists_hold_only_visible_records(world):
    assert client_for(world, "pathologist").get("/api/cases/").json()["count"] == 1
    assert client_for(world, "outsider").get("/api/cases/").json()["count"] == 0
    assert client_for(world, "outsider").get("/api/patients/").json()["count"] == 0
    reports = client_for(world, "clinician").get("/api/reports/").json()
    assert [r["status"] for r in reports["results"]] == ["signed"]


@pytest.mark.django_db
def test_other_clinicians_see_no_reports(world):
    from tests.factories import make_user

    stranger = make_user("clinician", username="other-clinician")
    client = APIClient()
    client.force_authenticate(stranger)
    assert client.get("/api/reports/").json()["count"] == 0
    assert client.get(f"/api/reports/{world['signed'].pk}/").status_code == 404


@pytest.mark.django_db
def test_pseudonymous_slide_carries_no_patient_identifiers(world):
    body = client_for(world, "annotator").get(f"/api/pseudo-slides/{world['slide'].pseudo_id}/").json()
    patient = world["case"].patient
    text = repr(body)
    for identifier in (patient.mrn, patient.family_name, str(patient.birth_date), world["case"].accession):
        assert identifier not in text
    assert "id" not in body and "case" not in body and "original_name" not in body


def _patient_payload(department="dept-a", mrn="NEW-1"):
    return {"mrn": mrn, "family_name": "Doe", "given_name": "Jane", "birth_date": "1970-01-02", "sex": "female",
            "department": department}


#                 pathologist annotator clinician admin outsider norole anonymous
WRITE_MATRIX = {
    "create-patient": (201, 403, 403, 201, 400, 403, 401),
    "create-case":    (201, 403, 403, 201, 400, 403, 401),
    "upload-slide":   (201, 403, 403, 201, 400, 403, 401),
    "set-mpp":        (200, 403, 403, 200, 404, 403, 401),
}


def _write(world, persona, action, n):
    client = client_for(world, persona)
    if action == "create-patient":
        return client.post("/api/patients/", _patient_payload(mrn=f"NEW-{n}"), format="json")
    if action == "create-case":
        return client.post("/api/cases/", {"accession": f"ACC-{n}", "patient": world["case"].patient.pk,
                                           "department": "dept-a", "indication": "breast_ductal",
                                           "assay_clone": "SP263"}, format="json")
    if action == "upload-slide":
        with open(shared_slide("boxes.tiff"), "rb") as fh:
            response = client.post("/api/slides/", {"files": fh, "case": world["case"].accession}, format="multipart")
        if response.status_code == 201:  # same file again for the next persona: a new copy each time
            from cases.models import Slide

            Slide.objects.filter(pk=response.json()["id"]).delete()
        return response
    if action == "set-mpp":
        return client.post(f"/api/slides/{world['slide'].pk}/mpp/", {"mpp_x": 0.5}, format="json")
    raise AssertionError(action)


@pytest.mark.django_db
@pytest.mark.parametrize("action", list(WRITE_MATRIX))
def test_write_matrix(world, action):
    got = {p: _write(world, p, action, i).status_code for i, p in enumerate(PERSONAS)}
    assert got == dict(zip(PERSONAS, WRITE_MATRIX[action]))


@pytest.mark.django_db
def test_delete_is_not_offered_through_the_api(world):
    client = client_for(world, "admin")
    for url in ("/api/patients/", "/api/cases/", "/api/slides/"):
        pk = {"/api/patients/": world["case"].patient.pk, "/api/cases/": world["case"].pk,
              "/api/slides/": world["slide"].pk}[url]
        assert client.delete(f"{url}{pk}/").status_code == 405
