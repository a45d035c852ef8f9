"""The annotator's pages: session list and annotation page (access, pseudonymity, configuration)."""

import json

import pytest

from cases.choices import Role
from tests.annotations import client_for, project_with_field, session_of
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_annotator_sees_own_sessions_and_the_page_without_patient_identifiers(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    client = client_for(personas["annotator"])
    listing = client.get("/annotate/sessions/")
    assert listing.status_code == 200
    assert f"/annotate/sessions/{session.pk}/" in listing.content.decode()
    page = client.get(f"/annotate/sessions/{session.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    patient, case = personas["case"].patient, personas["case"]
    for secret in (patient.mrn, patient.family_name, case.accession):
        assert secret not in html and secret not in listing.content.decode()
    assert str(field.slide.pseudo_id) in html
    config = json.loads(html.split('id="annotate-config" type="application/json">')[1].split("</script>")[0])
    assert config["field"] == [1000, 1000, 512, 512]
    assert config["dzi"] == f"/viewer/pseudo/{field.slide.pseudo_id}.dzi"
    assert config["points"] == f"/api/annotation/sessions/{session.pk}/points/"
    assert [lab["name"] for lab in config["labels"]][:2] == ["positive", "negative"] and config["editable"]


def test_other_users_sessions_are_404_and_other_roles_403(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    other = make_user(Role.ANNOTATOR, [personas["case"].department], username="annot2")
    assert client_for(other).get(f"/annotate/sessions/{session.pk}/").status_code == 404
    assert client_for(personas["clinician"]).get(f"/annotate/sessions/{session.pk}/").status_code == 403
    assert client_for(None).get("/annotate/sessions/").status_code == 302
