"""Issue 14, item 1: a signed report never changes.

The PDF and FHIR of a signed version are rendered once, at signing, stored with their sha256 and
served byte for byte; the fields a signed report states are locked (API 409, admin form error)
unless an amendment with a reason is open; corrections and regions after signing go only into a
new draft or amendment.
"""

import base64
import datetime
import hashlib
import io
import json

import pytest
from auditlog.models import LogEntry
from django.contrib.admin.sites import site
from django.test import Client, RequestFactory
from PIL import Image
from pypdf import PdfReader
from rest_framework.test import APIClient

from cases.choices import DocumentKind, ReportStatus
from cases.models import Case, ImmutableReport, Patient, RecordLocked, Report, ReportDocument
from cases.reports import do_amend, do_create_draft, do_sign
from tests.factories import CaseFactory, PatientFactory
from tests.viewer import job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


@pytest.fixture
def job(personas, media_root):
    job = job_with_result(personas["case"], n=3000, seed=5)
    slide = job.slide
    (media_root / "thumbs").mkdir(exist_ok=True)
    Image.new("RGB", (400, 300), (230, 220, 215)).save(media_root / "thumbs" / f"{slide.pk}.png")
    slide.thumbnail = f"thumbs/{slide.pk}.png"
    slide.save()
    return job


@pytest.fixture
def signed(personas, job):
    report = do_create_draft(personas["case"], job, personas["pathologist"], comment="as signed")
    return do_sign(report, personas["pathologist"], PASSWORD)


def api(user):
    client = APIClient()
    client.force_login(user)
    return client


def download(user, report, kind):
    """(body, response) of a download, checking that both hash headers state the body's sha256."""
    response = api(user).get(f"/api/reports/{report.pk}/{'pdf' if kind == 'pdf' else 'fhir'}/")
    assert response.status_code == 200, response.content[:300]
    body = response.content
    digest = hashlib.sha256(body).digest()
    assert response["X-Content-SHA256"] == digest.hex()
    assert response["Repr-Digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    return body, response


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_signing_stores_both_documents_and_the_pdf_footer_names_the_fhir_sha256(personas, signed):
    docs = {d.kind: d for d in ReportDocument.objects.filter(report=signed)}
    assert set(docs) == {DocumentKind.PDF, DocumentKind.FHIR} and all(d.at_signing for d in docs.values())
    for doc in docs.values():
        assert doc.sha256 == sha(doc.data)
    pdf, response = download(personas["pathologist"], signed, "pdf")
    fhir, _ = download(personas["pathologist"], signed, "fhir")
    assert pdf == docs["pdf"].data and fhir == docs["fhir"].data
    assert response["Content-Type"] == "application/pdf" and response["X-Report-Status"] == "signed"
    assert f"FHIR record sha256 {sha(fhir)}" in pdf_text(pdf).replace("\n", " ")
    assert json.loads(fhir)["entry"][0]["resource"]["status"] == "final"
    body = api(personas["pathologist"]).get(f"/api/reports/{signed.pk}/").json()
    assert body["document_sha256"] == {"pdf": sha(pdf), "fhir": sha(fhir)}
    page = Client()
    page.force_login(personas["clinician"])
    assert sha(pdf).encode() in page.get(f"/reports/{signed.pk}/").content
    # stored documents are never rewritten or deleted
    doc = docs["pdf"]
    doc.content = b"%PDF-forged"
    with pytest.raises(ImmutableReport):
        doc.save()
    with pytest.raises(ImmutableReport):
        doc.delete()


def test_downloads_stay_byte_identical_whatever_changes_after_signing(personas, signed, job):
    path, clinician = personas["pathologist"], personas["clinician"]
    pdf0, _ = download(clinician, signed, "pdf")
    fhir0, _ = download(clinician, signed, "fhir")
    case, patient = personas["case"], personas["case"].patient
    other = PatientFactory(department=patient.department)

    # Every edit of what the report states is refused, with a message that says how to proceed.
    client = api(path)
    for url, data in ((f"/api/patients/{patient.pk}/", {"family_name": "Renamed"}),
                      (f"/api/patients/{patient.pk}/", {"birth_date": "1971-01-02"}),
                      (f"/api/patients/{patient.pk}/", {"mrn": "MRN-NEW"}),
                      (f"/api/cases/{case.pk}/", {"assay_clone": "SP263"}),
                      (f"/api/cases/{case.pk}/", {"patient": other.pk}),
                      (f"/api/cases/{case.pk}/", {"specimen": "Liver"}),
                      (f"/api/cases/{case.pk}/", {"indication": "other"})):
        response = client.patch(url, data, format="json")
        assert response.status_code == 409, (url, data, response.content)
        assert "signed report" in response.json()["detail"] and "amendment" in response.json()["detail"]
    patient.refresh_from_db()
    case.refresh_from_db()
    assert patient.family_name != "Renamed" and patient.birth_date == datetime.date(1960, 5, 17)
    assert case.assay_clone == "22C3" and case.patient_id == patient.pk and case.specimen != "Liver"
    # Unchanged values and fields no report states still save.
    assert client.patch(f"/api/patients/{patient.pk}/", {"family_name": patient.family_name},
                        format="json").status_code == 200

    # Corrections and regions after signing are accepted (they are for the next draft or amendment).
    viewer = f"/api/viewer/jobs/{job.pk}/"
    assert client.post(viewer + "corrections/", {"base_version": 0, "op": "add", "x": 100.5, "y": 200.5,
                                                 "label": "positive"}, format="json").status_code == 201
    assert client.post(viewer + "regions/", {"base_version": 1, "kind": "tumour",
                                             "vertices": [[0, 0], [4000, 0], [4000, 6000], [0, 6000]]},
                       format="json").status_code == 201
    # A change behind the application's back (a direct database update) does not reach the documents either.
    Patient.objects.filter(pk=patient.pk).update(given_name="Changed-In-Database")
    Case.objects.filter(pk=case.pk).update(specimen="Changed in the database")

    for user in (clinician, path):
        assert download(user, signed, "pdf")[0] == pdf0
        assert download(user, signed, "fhir")[0] == fhir0
    assert "Changed-In-Database" not in pdf_text(pdf0) and b"Changed-In-Database" not in fhir0


def test_admin_refuses_locked_fields_with_a_message(personas, signed):
    admin_user = personas["admin"]
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    web = Client()
    web.force_login(admin_user)
    patient = personas["case"].patient
    form_data = {"mrn": patient.mrn, "family_name": "Admin-Renamed", "given_name": patient.given_name,
                 "birth_date": "1960-05-17", "sex": patient.sex, "department": patient.department_id}
    response = web.post(f"/admin/cases/patient/{patient.pk}/change/", form_data)
    assert response.status_code == 200 and b"stated by the signed report" in response.content
    patient.refresh_from_db()
    assert patient.family_name != "Admin-Renamed"

    request = RequestFactory().post("/")
    request.user = admin_user
    case = personas["case"]
    form_class = site._registry[Case].get_form(request, case)
    form = form_class({"accession": case.accession, "patient": case.patient_id, "department": case.department_id,
                       "indication": case.indication, "assay_clone": "SP142", "specimen": case.specimen,
                       "status": case.status}, instance=case)
    assert not form.is_valid() and "stated by the signed report" in str(form.errors)
    with pytest.raises(RecordLocked):  # the model refuses too, whoever calls save()
        fresh = Case.objects.get(pk=case.pk)
        fresh.assay_clone = "SP142"
        fresh.save()


def test_an_amendment_opens_the_record_and_gets_its_own_stored_documents(personas, signed, job):
    path = personas["pathologist"]
    client = api(path)
    case, patient = personas["case"], personas["case"].patient
    pdf1, _ = download(path, signed, "pdf")
    fhir1, _ = download(path, signed, "fhir")
    viewer = f"/api/viewer/jobs/{job.pk}/corrections/"
    assert client.post(viewer, {"base_version": 0, "op": "add", "x": 10.5, "y": 20.5, "label": "positive"},
                       format="json").status_code == 201

    response = client.post(f"/api/reports/{signed.pk}/amend/", {"reason": "wrong patient name and clone"},
                           format="json")
    assert response.status_code == 201
    v2 = Report.objects.get(pk=response.json()["id"])
    assert v2.scores["corrections_version"] == 1 and signed.scores["corrections_version"] == 0
    assert v2.scores["counts"]["positive"] == signed.scores["counts"]["positive"] + 1
    assert not ReportDocument.objects.filter(report=v2).exists()

    # With the amendment open, the stated fields may change (and the change is audited with its actor).
    assert client.patch(f"/api/patients/{patient.pk}/", {"family_name": "Amended-Name", "birth_date": "1961-02-03"},
                        format="json").status_code == 200
    assert client.patch(f"/api/cases/{case.pk}/", {"assay_clone": "SP263"}, format="json").status_code == 200
    assert LogEntry.objects.get_for_object(patient).filter(action=LogEntry.Action.UPDATE, actor=path).exists()
    # The draft was prepared for 22C3: it must be prepared again before it can be signed.
    fingerprint = client.get(f"/api/reports/{v2.pk}/").json()["draft_fingerprint"]
    response = client.post(f"/api/reports/{v2.pk}/sign/", {"password": PASSWORD, "draft_fingerprint": fingerprint},
                           format="json")
    assert response.status_code == 400 and "prepare the draft again" in response.json()["detail"]
    refilled = client.post("/api/reports/", {"case": case.pk, "job": job.pk}, format="json").json()
    assert refilled["id"] == v2.pk and refilled["draft_fingerprint"] != fingerprint
    assert client.post(f"/api/reports/{v2.pk}/sign/", {"password": PASSWORD,
                                                       "draft_fingerprint": refilled["draft_fingerprint"]},
                       format="json").status_code == 200

    pdf2, _ = download(path, v2, "pdf")
    fhir2, _ = download(path, v2, "fhir")
    text = pdf_text(pdf2)
    assert "Amended-Name" in text and "1961-02-03" in text and "SP263" in text
    assert "wrong patient name and clone" in text and f"FHIR record sha256 {sha(fhir2)}" in text.replace("\n", " ")
    assert json.loads(fhir2)["entry"][0]["resource"]["subject"]["display"].startswith("Amended-Name")
    assert {d.kind: d.sha256 for d in ReportDocument.objects.filter(report=v2)} == {"pdf": sha(pdf2),
                                                                                   "fhir": sha(fhir2)}
    # Version 1 is superseded but still serves what was signed, byte for byte.
    old_pdf, response = download(path, signed, "pdf")
    assert old_pdf == pdf1 and download(path, signed, "fhir")[0] == fhir1
    assert response["X-Report-Status"] == ReportStatus.AMENDED and "-superseded.pdf" in response["Content-Disposition"]
    assert "Amended-Name" not in pdf_text(old_pdf)
    # Signed again: locked again.
    assert client.patch(f"/api/patients/{patient.pk}/", {"family_name": "Third"}, format="json").status_code == 409


def test_a_patient_is_locked_by_every_signed_case(personas, signed, job):
    """An amendment of one case does not open the identity another signed case of the patient states."""
    path = personas["pathologist"]
    patient = personas["case"].patient
    second = CaseFactory(patient=patient)
    second_job = job_with_result(second, n=500, seed=2)
    do_sign(do_create_draft(second, second_job, path), path, PASSWORD)
    do_amend(signed, path, "name typo")
    patient.family_name = "Only-One-Amended"
    with pytest.raises(RecordLocked, match=second.accession):
        patient.save()
    do_amend(second.reports.get(), path, "name typo")
    patient.save()
    patient.refresh_from_db()
    assert patient.family_name == "Only-One-Amended"


def test_drafts_render_live_and_carry_the_hash_header(personas, job):
    path = personas["pathologist"]
    draft = do_create_draft(personas["case"], job, path)
    patient = personas["case"].patient
    before, _ = download(path, draft, "pdf")
    patient.family_name = "Draft-Renamed"
    patient.save()  # no signed report: nothing is locked
    after, _ = download(path, draft, "pdf")
    assert "Draft-Renamed" in pdf_text(after) and "Draft-Renamed" not in pdf_text(before)
    assert "Not a signed record" in pdf_text(after)
    assert not ReportDocument.objects.exists()


def test_a_signing_that_cannot_render_its_documents_does_not_happen(personas, job, monkeypatch):
    from cases import documents

    draft = do_create_draft(personas["case"], job, personas["pathologist"])

    def broken(report, fhir_sha256=None):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(documents, "render_pdf", broken)
    with pytest.raises(RuntimeError):
        do_sign(draft, personas["pathologist"], PASSWORD)
    draft.refresh_from_db()
    assert draft.status == ReportStatus.DRAFT and not ReportDocument.objects.exists()


def test_a_version_signed_before_stored_documents_gets_them_once(personas, job):
    """Rows signed before this change have no documents: the first download stores them, for good."""
    draft = do_create_draft(personas["case"], job, personas["pathologist"])
    Report.objects.filter(pk=draft.pk).update(status=ReportStatus.SIGNED, signed_by=personas["pathologist"],
                                              signed_at=datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC))
    legacy = Report.objects.get(pk=draft.pk)
    first, _ = download(personas["clinician"], legacy, "pdf")
    Patient.objects.filter(pk=personas["case"].patient_id).update(family_name="Later")
    assert download(personas["clinician"], legacy, "pdf")[0] == first
    assert list(ReportDocument.objects.filter(report=legacy).values_list("at_signing", flat=True)) == [False, False]

