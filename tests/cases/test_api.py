"""REST API behaviour: uploads, bad input, duplicates, tokens, pagination, filtering, schema."""

import io

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.models import Patient, Slide
from tests.conftest import shared_slide, stored_files
from tests.factories import CaseFactory, PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(personas):
    client = APIClient()
    client.force_authenticate(personas["pathologist"])
    return client


def upload(api, path, **fields):
    with open(path, "rb") as fh:
        return api.post("/api/slides/", {"files": fh, **fields}, format="multipart")


def test_upload_returns_metadata_and_thumbnail(api, personas):
    response = upload(api, shared_slide("CMU-1-Small-Region.svs"), case=personas["case"].accession)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["width"], body["height"], body["format"], body["case"]) == (2220, 2967, "aperio", personas["case"].pk)
    assert body["mpp_x"] == pytest.approx(0.499) and body["needs_mpp"] is False and body["duplicate"] is False
    thumb = api.get(body["thumbnail_url"])
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/png"
    assert b"".join(thumb.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"


def test_duplicate_upload_is_reported_and_stored_once(api, media_root):
    first = upload(api, shared_slide("small.svs"))
    files = sorted(stored_files(media_root))
    second = upload(api, shared_slide("small.svs"))
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["duplicate"] is True and second.json()["id"] == first.json()["id"]
    assert "already stored" in second.json()["detail"]
    assert Slide.objects.count() == 1 and sorted(stored_files(media_root)) == files


@pytest.mark.parametrize("content,name,message", [
    (b"", "empty.svs", "empty"),
    (b"plain text, not a slide" * 50, "notes.txt", "not a slide"),
])
def test_bad_uploads_get_400_and_leave_nothing(api, media_root, content, name, message):
    upload_file = io.BytesIO(content)
    upload_file.name = name
    response = api.post("/api/slides/", {"files": upload_file}, format="multipart")
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_unsupported_codec_upload_gets_400(api, media_root):
    response = upload(api, shared_slide("sm_image_jpegls.dcm"))
    assert response.status_code == 400
    assert "Unsupported transfer syntax" in response.json()["detail"]
    assert stored_files(media_root) == []


@pytest.mark.parametrize("name", ["../../etc/cron.d/x.svs", "sub/dir.svs", "C:\\temp\\x.svs"])
def test_name_with_path_parts_gets_400(api, media_root, name):
    response = upload(api, shared_slide("small.svs"), name=name)
    assert response.status_code == 400 and "path parts" in response.json()["detail"]
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_upload_over_the_size_limit_is_stopped(api, media_root, settings):
    settings.PDL1_SLIDE_UPLOAD_MAX_BYTES = 100_000
    response = upload(api, shared_slide("CMU-1-Small-Region.svs"))
    assert response.status_code == 413
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_upload_into_invisible_case_gets_400(api, media_root):
    other = CaseFactory()
    response = upload(api, shared_slide("small.svs"), case=other.accession)
    assert response.status_code == 400 and "no case" in response.json()["detail"]
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_bad_mpp_value_gets_400(api, media_root):
    assert upload(api, shared_slide("boxes.tiff"), mpp="-3").status_code == 400
    assert upload(api, shared_slide("boxes.tiff"), mpp="abc").status_code == 400
    assert Slide.objects.count() == 0


def test_mpp_can_be_set_on_a_flagged_slide(api):
    slide_id = upload(api, shared_slide("boxes.tiff")).json()["id"]
    assert api.post(f"/api/slides/{slide_id}/mpp/", {"mpp_x": 0.0}, format="json").status_code == 400
    body = api.post(f"/api/slides/{slide_id}/mpp/", {"mpp_x": 0.25}, format="json").json()
    assert (body["mpp_x"], body["mpp_y"], body["mpp_source"], body["needs_mpp"]) == (0.25, 0.25, "user", False)


def test_token_authentication(personas):
    token = Token.objects.create(user=personas["pathologist"])
    client = APIClient()
    assert client.get("/api/cases/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/cases/").status_code == 200


def test_obtain_token_endpoint(personas):
    response = APIClient().post("/api/auth/token/", {"username": "pathologist", "password": "pw-for-tests-123"})
    assert response.status_code == 200 and len(response.json()["token"]) == 40


def test_pagination_and_filtering(api, personas):
    department = personas["case"].department
    for i in range(60):
        PatientFactory(mrn=f"P{i:03d}", department=department)
    page = api.get("/api/patients/").json()
    assert page["count"] == 61 and len(page["results"]) == 50 and page["next"]
    assert api.get("/api/patients/?mrn=P007").json()["count"] == 1
    assert api.get("/api/patients/?search=P00").json()["count"] == 10
    CaseFactory(patient=Patient.objects.get(mrn="P001"), indication="breast_ductal")
    cases = api.get("/api/cases/?indication=breast_ductal").json()
    assert [c["indication"] for c in cases["results"]] == ["breast_ductal"]


def test_creating_a_patient_with_bad_data_changes_nothing(api):
    before = Patient.objects.count()
    bad = {"mrn": "", "family_name": "X", "birth_date": "not-a-date", "sex": "robot", "department": "dept-a"}
    response = api.post("/api/patients/", bad, format="json")
    assert response.status_code == 400
    assert set(response.json()) >= {"mrn", "birth_date", "sex"}
    assert Patient.objects.count() == before


def test_duplicate_mrn_and_accession_are_rejected(api, personas):
    patient = personas["case"].patient
    response = api.post("/api/patients/", {"mrn": patient.mrn, "family_name": "Y", "birth_date": "1980-01-01",
                                           "department": "dept-a"}, format="json")
    assert response.status_code == 400 and "mrn" in response.json()


def test_openapi_schema_and_swagger_ui(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in ("/api/patients/", "/api/cases/", "/api/slides/", "/api/slides/{id}/mpp/"):
        assert path in text
    ui = api.get("/api/schema/swagger-ui/")
    assert ui.status_code == 200
    html = ui.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower()
