"""Checks run inside the host project (DJANGO_SETTINGS_MODULE=hostproject.settings), in its own
process, by tests/test_hostproject.py: the module installed from its wheel, never the source tree."""

import ast
import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.staticfiles import finders
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

import analysis
import cases
from analysis.models import ModelVersion
from cases.models import Case, Department, Patient, Slide, UserProfile
from pdl1site.conf import DEFAULTS, RENAMED
from pdl1site.conf import settings as module_settings

MODULE_PACKAGES = ["pdl1site", "slideio", "cases", "annotations", "analysis", "workers", "viewer", "integration"]
# Read only by the standalone site's own files (its settings, ASGI entry and demo loader), never by a host.
SITE_ONLY = {"BASE_DIR", "SERVER_GC_THRESHOLD", "EMBEDDED_DEFAULT_DATABASE"}  # the standalone site's own


def test_module_comes_from_the_installed_wheel():
    source_tree = Path(os.environ["PDL1_SOURCE_TREE"]).resolve()
    for package in (cases, analysis):
        assert source_tree not in Path(package.__file__).resolve().parents


def _settings_read_by_the_module():
    """Every settings.NAME and getattr(settings, "NAME", ...) in the installed module's code."""
    names = set()
    for package in MODULE_PACKAGES:
        root = Path(__import__(package).__file__).parent
        for path in root.rglob("*.py"):
            if path.parent.name == "pdl1site" and path.name in {"settings.py", "asgi.py"}:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "settings":
                    names.add(node.attr)
    return {n for n in names if n.isupper()} - SITE_ONLY


def test_every_setting_the_module_reads_is_set_by_the_host_or_defaulted():
    names = _settings_read_by_the_module()
    assert {"PDL1_INSTITUTION_NAME", "PDL1_SLIDE_UPLOAD_MAX_BYTES", "AUTH_USER_MODEL"} <= names  # the scan works
    assert not {n for n in names if n in RENAMED}, "the module reads an unprefixed name of its own"
    missing = sorted(n for n in names if n not in DEFAULTS and not hasattr(settings, n))
    assert not missing, f"the module reads settings README.md does not give a host: {missing}"


def test_the_module_defaults_what_the_host_does_not_set():
    assert not hasattr(settings, "PDL1_BATCH_MAX_ATTEMPTS") and not hasattr(settings, "PDL1_INSTITUTION_NAME")
    assert module_settings.PDL1_BATCH_MAX_ATTEMPTS == 3
    assert module_settings.PDL1_INSTITUTION_NAME == DEFAULTS["PDL1_INSTITUTION_NAME"]
    # The one the host sets is its own (tests/hostproject/settings.py).
    assert settings.PDL1_SLIDE_UPLOAD_MAX_BYTES == module_settings.PDL1_SLIDE_UPLOAD_MAX_BYTES == 50_000


@pytest.mark.django_db
def test_the_hosts_upload_limit_is_honoured(client):
    """PDL1_SLIDE_UPLOAD_MAX_BYTES = 50_000 in the host's settings (the default is 8 GiB): a larger upload
    is stopped with 413 while it streams in; a smaller one gets through to the slide checks (400: not a slide)."""
    department = Department.objects.create(code="path", name="Pathology")
    user = get_user_model().objects.create_user("dr.limit", password="host-pass-123", staff_number="P-18")
    user.groups.add(Group.objects.get(name="pathologist"))
    UserProfile.objects.create(user=user).departments.add(department)
    client.force_login(user)

    too_large = client.post("/pathology/api/slides/", {"files": SimpleUploadedFile("big.svs", b"\0" * 60_000)})
    assert too_large.status_code == 413, too_large.content
    small = client.post("/pathology/api/slides/", {"files": SimpleUploadedFile("small.svs", b"\0" * 20_000)})
    assert small.status_code == 400, small.content
    assert Slide.objects.count() == 0


def test_shipped_files_are_found():
    for static in ("css/site.css", "favicon.svg", "vendor/openseadragon/openseadragon.min.js",
                   "viewer/main.js", "common/api.js", "common/osd.js", "workers/jobs.js", "annotations/annotate.js"):
        assert finders.find(static), static
    starter = Path(analysis.__file__).parent / "starter"
    assert list(starter.glob("*.pt")) and (starter / "model_card.json").is_file()


def test_scripts_build_no_absolute_url_of_their_own():
    """Script URLs start from the page's reverse()d roots (base.html data-api-root, data-ws-root), never
    from a literal "/api/...": under /pathology/ such a literal would miss."""
    literal = re.compile(r"(?<!\+ )[\"'`]/[a-z]")
    for package in MODULE_PACKAGES:
        for path in (Path(__import__(package).__file__).parent / "static").rglob("*.js"):
            if "vendor" not in path.parts:
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                    assert not literal.search(line), f"{path.name}:{number}: {line.strip()}"


@pytest.mark.django_db
def test_models_follow_the_hosts_user_model():
    User = get_user_model()
    assert User._meta.label == "hostusers.User"
    assert Case._meta.get_field("created_by").related_model is User
    assert UserProfile._meta.get_field("user").related_model is User
    # The admin role may manage the host's users (their permissions live in hostusers, not auth).
    assert Group.objects.get(name="admin").permissions.filter(
        content_type__app_label="hostusers", codename="change_user").exists()
    # post_migrate registered the shipped starter model from the installed package.
    assert ModelVersion.objects.filter(origin="shipped").exists()


LINK = re.compile(r'\b(?:href|src|action|data-[a-z-]+)="(/[^"]*)"')


@pytest.mark.django_db
def test_pathologist_works_under_the_prefix(client):
    department = Department.objects.create(code="path", name="Pathology")
    user = get_user_model().objects.create_user("dr.host", password="host-pass-123", staff_number="P-17")
    user.groups.add(Group.objects.get(name="pathologist"))
    UserProfile.objects.create(user=user).departments.add(department)

    # Anonymous: sent to the module's login page, under the prefix.
    response = client.get("/pathology/cases/")
    assert response.status_code == 302
    assert response["Location"].startswith("/pathology/accounts/login/?next=/pathology/cases/")
    login = client.get("/pathology/accounts/login/")
    assert login.status_code == 200

    response = client.post("/pathology/accounts/login/", {"username": "dr.host", "password": "host-pass-123"})
    assert response.status_code == 302 and response["Location"] == "/pathology/"
    assert client.get("/pathology/")["Location"] == "/pathology/cases/"

    # The API under the prefix, with the session.
    assert reverse("api:patient-list") == "/pathology/api/patients/"
    response = client.post("/pathology/api/patients/", {
        "mrn": "H-000123", "family_name": "Host", "given_name": "Hanna", "birth_date": "1961-02-03",
        "sex": "female", "department": "path"}, content_type="application/json")
    assert response.status_code == 201, response.content
    patient = Patient.objects.get(mrn="H-000123")
    response = client.post("/pathology/api/cases/", {
        "accession": "HP-26-0001", "patient": patient.pk, "department": "path", "indication": "lung_squamous",
        "assay_clone": "22C3", "specimen": "Lung, biopsy"}, content_type="application/json")
    assert response.status_code == 201, response.content
    case = Case.objects.get(accession="HP-26-0001")
    assert case.created_by == user
    listed = client.get("/pathology/api/cases/").json()
    assert [c["accession"] for c in listed["results"]] == ["HP-26-0001"]

    # Pages render, every link in them under the prefix (or the static files).
    for url in ("/pathology/cases/", case.get_absolute_url(), "/pathology/patients/"):
        assert url.startswith("/pathology/")
        page = client.get(url)
        assert page.status_code == 200, url
        html = page.content.decode()
        links = LINK.findall(html)
        assert links, url
        outside = [link for link in links if not link.startswith(("/pathology/", settings.STATIC_URL))]
        assert not outside, f"{url} links outside the module's prefix: {outside}"
        assert 'data-api-root="/pathology/api/"' in html and 'data-ws-root="/pathology/ws/"' in html
    assert f'href="/pathology/cases/{case.pk}/"' in client.get("/pathology/cases/").content.decode()

    # The host's own pages are untouched.
    assert client.get("/").content == b"Hospital information system"


@pytest.mark.django_db
def test_orders_arrive_under_the_prefix(client, settings):
    """The optional integration app in the host: a FHIR ServiceRequest under the prefix, from a user of
    the integration role (made by its migration), creates the patient and the case (SYNTHETIC patient)."""
    import json

    from integration.models import InboundMessage

    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "path"
    Department.objects.get_or_create(code="path", defaults={"name": "Pathology"})
    interface = get_user_model().objects.create_user("his-interface", password="his-pass-123", staff_number="I-1")
    interface.groups.add(Group.objects.get(name="integration"))
    client.force_login(interface)
    acsn = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
            "value": "H26-0042"}
    order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
             "contained": [{"resourceType": "Patient", "id": "p",
                            "identifier": [{"system": "urn:pdl1:mrn", "value": "H-SYN-1"}],
                            "name": [{"family": "Synthetic", "given": ["Host"]}], "gender": "female",
                            "birthDate": "1960-01-01"}],
             "identifier": [acsn], "code": {"text": "PD-L1 22C3"}, "subject": {"reference": "#p"},
             "reasonCode": [{"text": "Lung squamous cell carcinoma"}]}
    assert reverse("api:integration-fhir-servicerequest") == "/pathology/api/integration/fhir/ServiceRequest"
    response = client.generic("POST", "/pathology/api/integration/fhir/ServiceRequest", json.dumps(order),
                              content_type="application/fhir+json")
    assert response.status_code == 201, response.content
    case = Case.objects.get(accession="H26-0042")
    assert case.patient.mrn == "H-SYN-1" and case.assay_clone == "22C3"
    assert InboundMessage.objects.get().sender == "his-interface"
