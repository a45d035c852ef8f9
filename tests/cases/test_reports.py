"""Reports: cut-off tables, draft → signed → amended, immutability, PDF, FHIR, downloads and audit."""

import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from auditlog.models import LogEntry
from django.contrib.admin.sites import site
from django.contrib.contenttypes.models import ContentType
from PIL import Image
from pypdf import PdfReader
from rest_framework.test import APIClient

from cases.choices import CaseStatus, Indication, ReportStatus
from cases.models import Cutoff, CutoffTable, ImmutableReport, Patient, Report, ReportError
from cases.report_pdf import overlay_images
from cases.reports import do_amend, do_create_draft, do_sign, fhir_bundle
from tests.viewer import job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


@pytest.fixture
def job(personas, media_root):
    job = job_with_result(personas["case"], n=3000, seed=3)
    slide = job.slide
    thumb = Image.new("RGB", (400, 300), (230, 220, 215))
    (media_root / "thumbs").mkdir(exist_ok=True)
    thumb.save(media_root / "thumbs" / f"{slide.pk}.png")
    slide.thumbnail = f"thumbs/{slide.pk}.png"
    slide.save()
    return job


@pytest.fixture
def draft(personas, job):
    return do_create_draft(personas["case"], job, personas["pathologist"])


def api(user):
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def accesses(model, user):
    return LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model),
                                   action=LogEntry.Action.ACCESS, actor=user)


# --- cut-off tables -------------------------------------------------------------------------------

def test_default_cutoff_tables_are_migrated():
    lung = CutoffTable.objects.get(assay_clone="22C3", indication="lung_squamous", score_type="TPS")
    assert lung.approved and "KEYTRUDA" in lung.source
    assert [(c.lower_bound, c.label) for c in lung.cutoffs.all()] == [
        (0, "TPS < 1%"), (1, "TPS 1-49%"), (50, "TPS >= 50%")]
    sp263 = CutoffTable.objects.get(assay_clone="SP263", indication="lung_squamous", score_type="TPS")
    assert [c.lower_bound for c in sp263.cutoffs.all()] == [0, 1, 25, 50] and "SP263" in sp263.source
    assert not CutoffTable.objects.filter(indication="breast_ductal", approved=True).exists()


def test_draft_snapshot_uses_the_case_table(draft, job):
    s = draft.scores
    pos, neg = job.summary["counts"]["positive"], job.summary["counts"]["negative"]
    assert s["tps"]["value"] == pytest.approx(100 * pos / (pos + neg), abs=0.01)
    assert s["tps"]["category"] == "TPS 1-49%" and s["tps"]["approved"] and not s["research_use"]
    assert s["adequacy"]["adequate"] and s["viable_tumour_cells"] == pos + neg
    assert s["cps"]["value"] is None and s["cps"]["status"].startswith("unavailable")
    assert s["method"]["detector"] == "classic" and s["method"]["job"] == job.pk


def test_breast_without_an_approved_table_is_research_use(personas, job):
    case = personas["case"]
    case.indication = Indication.BREAST_DUCTAL
    case.save()
    report = do_create_draft(case, job, personas["pathologist"])
    assert report.scores["research_use"] and report.scores["tps"]["category"] is None
    table = CutoffTable.objects.create(assay_clone="22C3", indication="breast_ductal", score_type="TPS",
                                       approved=True, source="local validation")
    Cutoff.objects.create(table=table, lower_bound=0, label="low")
    Cutoff.objects.create(table=table, lower_bound=1, label="high")
    report = do_create_draft(case, job, personas["pathologist"])
    assert not report.scores["research_use"] and report.scores["tps"]["category"] == "high"


def test_admin_edits_of_cutoffs_apply_to_new_drafts_and_are_audited(personas, job):
    table = CutoffTable.objects.get(assay_clone="22C3", indication="lung_squamous", score_type="TPS")
    table.approved = False
    table.save()
    assert LogEntry.objects.get_for_object(table).filter(action=LogEntry.Action.UPDATE).exists()
    assert do_create_draft(personas["case"], job, personas["pathologist"]).scores["research_use"]


def test_fewer_than_100_cells_is_insufficient(personas, media_root):
    job = job_with_result(personas["case"], n=60, seed=1)
    report = do_create_draft(personas["case"], job, personas["pathologist"])
    assert not report.scores["adequacy"]["adequate"]
    assert report.scores["tps"]["status"] == "insufficient for scoring" and report.scores["tps"]["category"] is None


# --- sign-off -------------------------------------------------------------------------------------

def test_wrong_password_changes_nothing(draft, personas):
    with pytest.raises(ReportError, match="password is incorrect"):
        do_sign(draft, personas["pathologist"], "wrong")
    draft.refresh_from_db()
    assert draft.status == ReportStatus.DRAFT and draft.signed_by is None and draft.signed_at is None


def test_sign_then_immutable(draft, personas):
    do_sign(draft, personas["pathologist"], PASSWORD)
    draft.refresh_from_db()
    assert draft.status == ReportStatus.SIGNED and draft.signed_by == personas["pathologist"] and draft.signed_at
    assert draft.case.status == CaseStatus.SIGNED
    draft.comment = "changed after signing"
    with pytest.raises(ImmutableReport):
        draft.save()
    draft.refresh_from_db()
    with pytest.raises(ImmutableReport):
        draft.delete()
    with pytest.raises(ReportError):
        do_sign(draft, personas["pathologist"], PASSWORD)
    with pytest.raises(ReportError, match="signed report"):
        do_create_draft(draft.case, draft.job, personas["pathologist"])
    assert not site._registry[Report].has_change_permission(_request(personas["admin"]), draft)
    assert not site._registry[Report].has_delete_permission(_request(personas["admin"]), draft)


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = user
    return request


def test_only_pathologists_sign(draft, personas):
    for who in ("admin", "clinician", "annotator"):
        with pytest.raises(ReportError, match="Only pathologists"):
            do_sign(draft, personas[who], PASSWORD)
    with pytest.raises(ReportError, match="no such case"):
        do_sign(draft, personas["outsider"], PASSWORD)


def test_amend_needs_a_reason_and_keeps_versions(draft, personas):
    path = personas["pathologist"]
    do_sign(draft, path, PASSWORD)
    with pytest.raises(ReportError, match="reason"):
        do_amend(draft, path, "  ")
    v2 = do_amend(draft, path, "Corrected the specimen site", comment="amended comment")
    assert v2.version == 2 and v2.status == ReportStatus.DRAFT and v2.supersedes == draft
    assert v2.scores == draft.scores and v2.comment == "amended comment"
    with pytest.raises(ReportError, match="already in progress"):
        do_amend(draft, path, "again")
    draft.refresh_from_db()
    assert draft.status == ReportStatus.SIGNED  # stays the clinicians' report until v2 is signed
    do_sign(v2, path, PASSWORD)
    draft.refresh_from_db()
    v2.refresh_from_db()
    assert draft.status == ReportStatus.AMENDED and v2.status == ReportStatus.SIGNED
    assert draft.fhir_status == "amended" and v2.fhir_status == "amended"
    assert list(Report.objects.filter(case=draft.case).values_list("version", flat=True)) == [2, 1]


# --- API --------------------------------------------------------------------------------------------

def test_api_draft_sign_amend(personas, job):
    client = api(personas["pathologist"])
    r = client.post("/api/reports/", {"case": personas["case"].pk, "job": job.pk, "comment": "c"}, format="json")
    assert r.status_code == 201, r.content
    report_id, fingerprint = r.json()["id"], r.json()["draft_fingerprint"]
    assert r.json()["scores"]["tps"]["category"] == "TPS 1-49%" and r.json()["status"] == "draft"
    assert client.get(f"/api/reports/{report_id}/").json()["draft_fingerprint"] == fingerprint
    r = client.post(f"/api/reports/{report_id}/sign/", {"password": "nope", "draft_fingerprint": fingerprint},
                    format="json")
    assert r.status_code == 400 and "password" in r.json()["detail"]
    assert client.get(f"/api/reports/{report_id}/").json()["status"] == "draft"
    r = client.post(f"/api/reports/{report_id}/sign/", {"password": PASSWORD, "draft_fingerprint": fingerprint},
                    format="json")
    assert r.status_code == 200 and r.json()["status"] == "signed" and r.json()["signed_by_name"] == "pathologist"
    assert r.json()["draft_fingerprint"] is None
    assert client.patch(f"/api/reports/{report_id}/", {"comment": "x"}, format="json").status_code == 405
    r = client.post(f"/api/reports/{report_id}/comment/", {"comment": "x"}, format="json")
    assert r.status_code == 409 and "no longer a draft" in r.json()["detail"]
    assert client.post(f"/api/reports/{report_id}/amend/", {}, format="json").status_code == 400
    r = client.post(f"/api/reports/{report_id}/amend/", {"reason": "typo"}, format="json")
    assert r.status_code == 201 and r.json()["version"] == 2 and r.json()["supersedes"] == report_id


def test_api_authoring_is_for_pathologists_of_the_case(personas, job, draft):
    for who in ("clinician", "admin"):
        r = api(personas[who]).post("/api/reports/", {"case": personas["case"].pk, "job": job.pk}, format="json")
        assert r.status_code == 403
        assert api(personas[who]).post(f"/api/reports/{draft.pk}/sign/", {"password": PASSWORD},
                                       format="json").status_code == 403
    r = api(personas["outsider"]).post("/api/reports/", {"case": personas["case"].pk, "job": job.pk}, format="json")
    assert r.status_code == 400
    assert api(personas["outsider"]).post(f"/api/reports/{draft.pk}/sign/", {"password": PASSWORD},
                                          format="json").status_code == 404
    assert api(personas["annotator"]).get(f"/api/reports/{draft.pk}/pdf/").status_code == 403


def test_clinicians_download_only_signed_reports_of_their_patients_and_are_audited(personas, draft):
    clinician = personas["clinician"]
    assert api(clinician).get(f"/api/reports/{draft.pk}/pdf/").status_code == 404
    assert api(clinician).get(f"/api/reports/{draft.pk}/fhir/").status_code == 404
    do_sign(draft, personas["pathologist"], PASSWORD)
    r = api(clinician).get(f"/api/reports/{draft.pk}/pdf/")
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf" and r.content.startswith(b"%PDF")
    r = api(clinician).get(f"/api/reports/{draft.pk}/fhir/")
    assert r.status_code == 200 and json.loads(r.content)["resourceType"] == "Bundle"
    assert accesses(Report, clinician).filter(object_pk=str(draft.pk)).count() == 2
    assert accesses(Patient, clinician).count() == 2
    other = make_other_clinician()
    assert api(other).get(f"/api/reports/{draft.pk}/pdf/").status_code == 404


def make_other_clinician():
    from cases.choices import Role
    from tests.factories import make_user

    return make_user(Role.CLINICIAN, username="other-clinician")


# --- PDF and FHIR -----------------------------------------------------------------------------------

def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_pdf_content(personas, draft, settings):
    settings.PDL1_INSTITUTION_NAME = "St. Example University Hospital"
    case = draft.case
    case.specimen = "Lung, right upper lobe, core biopsy"
    case.save()
    draft = do_create_draft(case, draft.job, personas["pathologist"], comment="Tumour cellularity good.")
    do_sign(draft, personas["pathologist"], PASSWORD)
    body = api(personas["pathologist"]).get(f"/api/reports/{draft.pk}/pdf/").content
    text = _pdf_text(body)
    s = draft.scores
    for expected in ("St. Example University Hospital", case.patient.mrn, case.accession, case.patient.family_name,
                     "Lung, right upper lobe", "Lung squamous cell carcinoma", "22C3", "pharmDx",
                     f"{s['tps']['value']:.2f}%", "TPS 1-49%", "TPS >= 50%", "KEYTRUDA", "adequate",
                     str(s["counts"]["positive"]), "classic", "Electronically signed by pathologist",
                     "Tumour cellularity good.", "unavailable", "Page 1 of", "FINAL"):
        assert expected in text, expected


def test_draft_pdf_says_draft_and_research_use(personas, job):
    case = personas["case"]
    case.indication = Indication.BREAST_DUCTAL
    case.save()
    report = do_create_draft(case, job, personas["pathologist"])
    text = _pdf_text(api(personas["pathologist"]).get(f"/api/reports/{report.pk}/pdf/").content)
    assert "DRAFT" in text and "RESEARCH USE ONLY" in text and "Not signed" in text


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_pdf_pages_render(draft, personas, tmp_path):
    data = api(personas["pathologist"]).get(f"/api/reports/{draft.pk}/pdf/").content
    (tmp_path / "r.pdf").write_bytes(data)
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(tmp_path / "r.pdf"), str(tmp_path / "page")], check=True,
                   timeout=60)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) == len(PdfReader(io.BytesIO(data)).pages) >= 1
    pixels = np.concatenate([np.asarray(Image.open(p).convert("RGB")).reshape(-1, 3) for p in pages])
    assert (pixels.min(axis=1) < 128).mean() > 0.005  # text and images, not a blank page
    red = (pixels[:, 0] > 180) & (pixels[:, 1] < 90) & (pixels[:, 2] < 90)
    assert red.sum() > 20  # the detection overlay is drawn


def test_overlay_draws_detections_at_thumbnail_scale(job):
    dots, heat = overlay_images(job.slide, job)
    assert dots.size == heat.size == (400, 300)
    a = np.asarray(dots)
    # The viewer's colours (analysis.labels): positives red (220, 30, 40), negatives yellow (245, 200, 0).
    red = (a == (220, 30, 40)).all(axis=-1)
    yellow = (a == (245, 200, 0)).all(axis=-1)
    assert red.any() and yellow.any()
    xy, labels, _ = job.truth
    x, y = xy[labels == 1][0] * (400 / job.slide.width)
    assert red[int(y), int(x)]  # a positive lies under a red dot (positives are drawn last, on top)
    assert np.abs(np.asarray(heat).astype(int) - 225).sum() > 0


def test_fhir_bundle(draft, personas):
    bundle = fhir_bundle(draft)
    resources = [e["resource"] for e in bundle["entry"]]
    report, tps_obs, cps_obs = resources
    assert report["resourceType"] == "DiagnosticReport" and report["status"] == "preliminary"
    assert report["subject"]["identifier"]["value"] == draft.case.patient.mrn
    assert tps_obs["code"]["coding"][0] == {"system": "http://loinc.org", "code": "85147-7",
                                            "display": tps_obs["code"]["coding"][0]["display"]}
    assert tps_obs["valueQuantity"]["value"] == draft.scores["tps"]["value"]
    assert tps_obs["valueQuantity"]["unit"] == "%"
    assert tps_obs["interpretation"][0]["text"] == "TPS 1-49%"
    assert "dataAbsentReason" in cps_obs and "valueQuantity" not in cps_obs
    assert {r["reference"] for r in report["result"]} == {f"Observation/{tps_obs['id']}", f"Observation/{cps_obs['id']}"}
    do_sign(draft, personas["pathologist"], PASSWORD)
    draft.refresh_from_db()
    signed = fhir_bundle(draft)["entry"][0]["resource"]
    assert signed["status"] == "final" and signed["issued"] and signed["resultsInterpreter"][0]["display"]


# --- pages ------------------------------------------------------------------------------------------

def test_case_report_page_prepares_signs_and_amends(personas, job):
    from django.test import Client

    client = Client()
    client.force_login(personas["pathologist"])
    url = f"/cases/{personas['case'].pk}/report/"
    page = client.get(url)
    assert page.status_code == 200 and b"Prepare a draft" in page.content
    assert client.post(url, {"step": "draft", "job": job.pk, "comment": ""}).status_code == 302
    report = Report.objects.get(case=personas["case"])
    page = client.get(url)
    assert b"sign-form" in page.content and b"TPS 1-49%" in page.content
    fingerprint = re.search(r'name="draft_fingerprint" value="([0-9a-f]{64})"', page.content.decode()).group(1)
    page = client.post(url, {"step": "sign", "password": "bad", "draft_fingerprint": fingerprint}, follow=True)
    assert b"password is incorrect" in page.content
    report.refresh_from_db()
    assert report.status == ReportStatus.DRAFT
    client.post(url, {"step": "sign", "password": PASSWORD, "draft_fingerprint": fingerprint})
    report.refresh_from_db()
    assert report.status == ReportStatus.SIGNED
    page = client.get(url)
    assert b"amend-form" in page.content and b"sign-form" not in page.content
    client.post(url, {"step": "amend", "reason": "wrong specimen"})
    assert Report.objects.filter(case=personas["case"]).count() == 2
    old = client.get(f"/reports/{report.pk}/")
    assert old.status_code == 200 and b"version 1" in old.content
    assert client.get("/reports/").status_code == 200


def test_clinician_pages(personas, draft):
    from django.test import Client

    client = Client()
    client.force_login(personas["clinician"])
    assert client.get(f"/reports/{draft.pk}/").status_code == 404
    assert client.get(f"/cases/{draft.case.pk}/report/").status_code == 403
    do_sign(draft, personas["pathologist"], PASSWORD)
    page = client.get("/reports/")
    assert f"/api/reports/{draft.pk}/pdf/".encode() in page.content
    assert client.get(f"/reports/{draft.pk}/").status_code == 200
