"""The web pages: the 'done when' journey of issue 2, and page-level access."""

import re

import pytest
from django.test import Client

from cases.models import Case, Patient, Slide
from tests.conftest import shared_slide, stored_files

pytestmark = pytest.mark.django_db


def test_pathologist_journey_create_patient_case_upload_and_see_metadata(personas):
    web = Client()
    assert web.post("/accounts/login/", {"username": "pathologist", "password": "pw-for-tests-123"}).status_code == 302
    dept = personas["case"].department
    response = web.post("/patients/new/", {"mrn": "J-001", "family_name": "Journey", "given_name": "Ann",
                                           "birth_date": "1955-07-01", "sex": "female", "department": dept.pk})
    assert response.status_code == 302
    patient = Patient.objects.get(mrn="J-001")
    response = web.post("/cases/new/", {"accession": "J26-1", "patient": patient.pk, "department": dept.pk,
                                        "indication": "lung_squamous", "assay_clone": "22C3"})
    case = Case.objects.get(accession="J26-1")
    assert response["Location"] == f"/cases/{case.pk}/"
    with open(shared_slide("CMU-1-Small-Region.svs"), "rb") as fh:
        response = web.post(f"/cases/{case.pk}/", {"files": fh, "marker": "PD-L1"})
    slide = Slide.objects.get(case=case)
    assert response["Location"] == f"/slides/{slide.pk}/"
    page = web.get(f"/slides/{slide.pk}/").content.decode()
    for fact in ("2220 × 2967 px", "Leica Aperio", "0.4990", "CMU-1-Small-Region.svs", "label, macro, thumbnail"):
        assert fact in page
    thumb_url = re.search(r'<img class="thumbnail" src="([^"]+)"', page).group(1)
    thumb = web.get(thumb_url)
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/png"


def test_upload_form_shows_a_clear_error_for_a_bad_file(personas, media_root, tmp_path):
    web = Client()
    web.force_login(personas["pathologist"])
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"\x00" * 1000)
    with open(bad, "rb") as fh:
        response = web.post(f"/cases/{personas['case'].pk}/", {"files": fh, "marker": "PD-L1"})
    assert response.status_code == 200
    assert "not a readable .svs slide" in response.content.decode()
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_flagged_slide_page_lets_the_user_set_mpp(personas):
    web = Client()
    web.force_login(personas["pathologist"])
    with open(shared_slide("boxes.tiff"), "rb") as fh:
        web.post(f"/cases/{personas['case'].pk}/", {"files": fh, "marker": "PD-L1"})
    slide = Slide.objects.get()
    assert "missing: set it below" in web.get(f"/slides/{slide.pk}/").content.decode()
    assert web.post(f"/slides/{slide.pk}/", {"mpp_x": "0.5"}).status_code == 302
    slide.refresh_from_db()
    assert slide.mpp_x == 0.5 and "0.5000 × 0.5000 µm/px" in web.get(f"/slides/{slide.pk}/").content.decode()


@pytest.mark.parametrize("persona,url_name,expected", [
    ("annotator", "case", 403), ("clinician", "case", 403), ("outsider", "case", 404), ("admin", "case", 200),
    ("annotator", "annotate", 200), ("clinician", "annotate", 403),
    ("clinician", "reports", 200), ("annotator", "reports", 403),
    ("anonymous", "case", 302),
])
def test_page_access(personas, persona, url_name, expected):
    web = Client()
    if persona != "anonymous":
        web.force_login(personas[persona])
    url = {"case": f"/cases/{personas['case'].pk}/", "annotate": "/annotate/", "reports": "/reports/"}[url_name]
    assert web.get(url).status_code == expected


def test_home_sends_each_role_to_its_page(personas):
    expected = {"pathologist": "/cases/", "annotator": "/annotate/sessions/", "clinician": "/reports/"}
    for persona, target in expected.items():
        web = Client()
        web.force_login(personas[persona])
        assert web.get("/")["Location"] == target


def test_annotator_page_shows_no_patient_identifiers(personas):
    from cases.services import IngestSource, do_ingest_slide

    do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))], case=personas["case"])
    web = Client()
    web.force_login(personas["annotator"])
    page = web.get("/annotate/").content.decode()
    patient = personas["case"].patient
    assert str(Slide.objects.get().pseudo_id) in page
    for identifier in (patient.mrn, patient.family_name, personas["case"].accession, "small.svs"):
        assert identifier not in page


def test_admin_covers_every_model(personas):
    web = Client()
    web.force_login(personas["admin"])
    personas["admin"].is_staff = personas["admin"].is_superuser = True
    personas["admin"].save()
    for model in ("department", "userprofile", "patient", "case", "slide", "report"):
        assert web.get(f"/admin/cases/{model}/").status_code == 200, model
    assert web.get(f"/admin/cases/patient/{personas['case'].patient.pk}/change/").status_code == 200


def test_every_model_of_the_platform_is_in_the_admin():
    from django.apps import apps
    from django.contrib import admin

    ours = ["cases", "annotations", "analysis", "workers", "viewer"]
    missing = [m.__name__ for label in ours for m in apps.get_app_config(label).get_models()
               if not admin.site.is_registered(m)]
    assert missing == []


def test_oversized_upload_through_the_page_is_refused(personas, media_root, settings):
    settings.PDL1_SLIDE_UPLOAD_MAX_BYTES = 50_000
    web = Client()
    web.force_login(personas["pathologist"])
    with open(shared_slide("CMU-1-Small-Region.svs"), "rb") as fh:
        response = web.post(f"/cases/{personas['case'].pk}/", {"files": fh, "marker": "PD-L1"}, follow=True)
    assert "larger than the configured limit" in response.content.decode()
    assert Slide.objects.count() == 0 and stored_files(media_root) == []
