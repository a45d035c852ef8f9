"""The API user's journey (issue 18), with token authentication only, as a laboratory system would:
obtain a token -> file a patient and a case -> upload a slide -> start the analysis -> read the job,
its TPS and the slide's check before scoring -> reclassify a cell through the viewer API -> draft the
report from the corrected counts -> sign it; the treating clinician's own token then lists the signed
report and downloads its PDF. django-q2 runs the job inline in tests (tests/settings.py).
"""

import io
from pathlib import Path

import pytest
from rest_framework.test import APIClient

PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def token_client(username: str) -> APIClient:
    client = APIClient()
    answer = client.post("/api/auth/token/", {"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.content
    client.credentials(HTTP_AUTHORIZATION=f"Token {answer.json()['token']}")
    return client


def test_api_journey_from_patient_to_signed_pdf(personas, synthetic_slide_file, media_root):
    from pypdf import PdfReader

    from cases.models import Patient

    assert APIClient().get("/api/cases/").status_code == 401  # nothing without a token
    api = token_client("pathologist")
    dept = personas["case"].department.code
    patient = api.post("/api/patients/", {"mrn": "API-001", "family_name": "Api", "given_name": "Journey",
                                          "birth_date": "1950-02-03", "sex": "male", "department": dept},
                       format="json")
    assert patient.status_code == 201, patient.content
    case = api.post("/api/cases/", {"accession": "S26-API", "patient": patient.json()["id"], "department": dept,
                                    "indication": "lung_squamous", "assay_clone": "22C3"}, format="json")
    assert case.status_code == 201, case.content
    with open(synthetic_slide_file.path, "rb") as fh:
        upload = api.post("/api/slides/", {"files": fh, "case": "S26-API", "marker": "PD-L1"}, format="multipart")
    assert upload.status_code == 201, upload.content
    slide = upload.json()
    assert slide["original_name"] == Path(synthetic_slide_file.path).name and slide["qc_status"] == "unchecked"

    started = api.post("/api/jobs/", {"slide": slide["id"], "detector": "classic"}, format="json")
    assert started.status_code == 201, started.content
    job = api.get(f"/api/jobs/{started.json()['id']}/").json()
    assert job["status"] == "done", job
    counts = job["detections_before_review"]["counts"]
    assert counts["positive"] > 0 and counts["negative"] > 0 and "tps" not in job["detections_before_review"]
    assert api.get(f"/api/slides/{slide['id']}/").json()["qc_status"] == "passed"

    # The pathologist reclassifies one positive cell: the viewer API's scores move by one.
    viewer = f"/api/viewer/jobs/{job['id']}"
    points = api.get(f"{viewer}/points/", {"x0": 0, "y0": 0, "x1": 1536, "y1": 1536, "max": 100000}).json()
    positive = points["ids"][points["labels"].index(1)]
    corrected = api.post(f"{viewer}/corrections/", {"base_version": 0, "op": "reclassify", "detection": positive,
                                                   "label": "negative"}, format="json")
    assert corrected.status_code == 201, corrected.content
    assert corrected.json()["scores"]["counts"]["positive"] == counts["positive"] - 1

    draft = api.post("/api/reports/", {"case": case.json()["id"], "job": job["id"]}, format="json")
    assert draft.status_code == 201, draft.content
    report = draft.json()
    assert report["status"] == "draft" and report["scores"]["counts"]["positive"] == counts["positive"] - 1
    signed = api.post(f"/api/reports/{report['id']}/sign/", {"password": PASSWORD,
                                                             "draft_fingerprint": report["draft_fingerprint"]},
                      format="json")
    assert signed.status_code == 200 and signed.json()["status"] == "signed", signed.content
    assert set(signed.json()["document_sha256"]) >= {"pdf"}

    # The treating clinician, with a token of their own, finds the signed report and downloads the PDF.
    Patient.objects.get(mrn="API-001").clinicians.add(personas["clinician"])
    clinician = token_client("clinician")
    listed = clinician.get("/api/reports/").json()["results"]
    assert [(r["accession"], r["status"]) for r in listed] == [("S26-API", "signed")]
    assert clinician.post("/api/reports/", {"case": case.json()["id"], "job": job["id"]},
                          format="json").status_code == 403
    pdf = clinician.get(listed[0]["pdf_url"])
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    body = b"".join(pdf.streaming_content) if pdf.streaming else pdf.content
    text = "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(body)).pages)
    assert "S26-API" in text and "TPS" in text, text[:1000]
