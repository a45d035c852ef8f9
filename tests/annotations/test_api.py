"""REST API: personas, pseudonymity, whole-set saves with versions, review, import/export."""

import json

import pytest

from annotations.models import AnnotationProject, AnnotationSession, Field
from cases.choices import Role
from tests.annotations import client_for, project_with_field, session_of
from tests.factories import make_user
from tests.viewer import SlideFactory

pytestmark = pytest.mark.django_db

API = "/api/annotation"


def put_points(client, session, version, points):
    return client.put(f"{API}/sessions/{session.pk}/points/", {"version": version, "points": points},
                      content_type="application/json")


def test_pathologist_creates_project_and_field_and_assigns(personas):
    client = client_for(personas["pathologist"])
    r = client.post(f"{API}/projects/", {"name": "batch 1", "indication": "lung_squamous", "marker": "PD-L1",
                                         "extra_labels": [{"name": "immune", "colour": "#00ff00"}]},
                    content_type="application/json")
    assert r.status_code == 201, r.content
    project_id = r.json()["id"]
    assert [lab["name"] for lab in r.json()["labels"]] == ["positive", "negative", "immune"]
    slide = SlideFactory(case=personas["case"])
    r = client.post(f"{API}/fields/", {"project": project_id, "slide": str(slide.pseudo_id), "x": 10, "y": 20,
                                       "width": 256, "height": 256}, content_type="application/json")
    assert r.status_code == 201, r.content
    assert r.json()[0]["region"] == [10, 20, 256, 256] and r.json()[0]["slide"] == str(slide.pseudo_id)
    r = client.post(f"{API}/projects/{project_id}/annotators/", {"annotators": ["annotator", "ghost"]},
                    content_type="application/json")
    assert r.status_code == 400 and "ghost" in r.content.decode()
    r = client.post(f"{API}/projects/{project_id}/annotators/", {"annotators": ["annotator"]},
                    content_type="application/json")
    assert r.status_code == 200 and r.json()["annotators"] == ["annotator"]
    assert AnnotationSession.objects.filter(annotator=personas["annotator"]).count() == 1
    r = client.post(f"{API}/fields/", {"project": project_id, "slide": str(slide.pseudo_id), "x": 7900, "y": 0,
                                       "width": 256, "height": 256}, content_type="application/json")
    assert r.status_code == 400 and "not inside" in r.json()["problems"][0]


@pytest.mark.parametrize("who", ["annotator", "clinician", "norole"])
def test_only_pathologists_and_admins_create_projects(personas, who):
    r = client_for(personas[who]).post(f"{API}/projects/", {"name": "x"}, content_type="application/json")
    assert r.status_code == 403
    assert not AnnotationProject.objects.exists()


def test_clinician_outsider_and_anonymous_are_denied(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    for who in ("clinician", "norole"):
        client = client_for(personas[who])
        assert client.get(f"{API}/sessions/").status_code == 403
        assert client.get(f"{API}/sessions/{session.pk}/points/").status_code == 403
        assert client.get(f"{API}/projects/").status_code == 403
    outsider = client_for(personas["outsider"])
    assert outsider.get(f"{API}/sessions/").json()["results"] == []
    assert outsider.get(f"{API}/sessions/{session.pk}/points/").status_code == 404
    assert outsider.get(f"{API}/fields/{field.pk}/agreement/").status_code == 404
    assert client_for(None).get(f"{API}/sessions/").status_code == 401  # token authentication first: 401


def test_annotator_sees_only_own_sessions_and_no_identifiers(personas):
    other = make_user(Role.ANNOTATOR, [personas["case"].department], username="annot2")
    _, field = project_with_field(personas, annotators=[personas["annotator"], other])
    client = client_for(personas["annotator"])
    rows = client.get(f"{API}/sessions/").json()["results"]
    assert len(rows) == 1 and rows[0]["annotator"] == "annotator"
    assert rows[0]["slide"] == str(field.slide.pseudo_id) and rows[0]["region"] == field.region
    assert rows[0]["dzi"] == f"/viewer/pseudo/{field.slide.pseudo_id}.dzi"
    body = json.dumps(rows) + client.get(f"{API}/projects/").content.decode() + \
        client.get(f"{API}/fields/").content.decode()
    case, patient = personas["case"], personas["case"].patient
    for secret in (case.accession, patient.mrn, patient.family_name, patient.given_name, field.slide.original_name,
                   field.slide.sha256):
        assert secret not in body
    other_session = session_of(field, other)
    assert client.get(f"{API}/sessions/{other_session.pk}/").status_code == 404
    assert put_points(client, other_session, 0, []).status_code == 404
    # annotators neither manage projects nor review
    assert client.get(f"{API}/fields/{field.pk}/agreement/").status_code == 403
    assert client.post(f"{API}/projects/{field.project_id}/annotators/", {"annotators": ["annot2"]},
                       content_type="application/json").status_code == 403


def test_put_points_versions_and_conflict(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    tab_a, tab_b = client_for(personas["annotator"]), client_for(personas["annotator"])
    r = tab_a.get(f"{API}/sessions/{session.pk}/points/")
    assert r.json() == {"version": 0, "status": "assigned", "points": []}
    r = put_points(tab_a, session, 0, [{"x": 1100, "y": 1100, "label": "positive"}])
    assert r.status_code == 200 and r.json()["version"] == 1 and r.json()["status"] == "in_progress"
    r = put_points(tab_b, session, 0, [{"x": 1200, "y": 1200, "label": "negative"}])
    assert r.status_code == 409
    assert r.json()["current_version"] == 1 and "Nothing was overwritten" in r.json()["detail"]
    assert tab_b.get(f"{API}/sessions/{session.pk}/points/").json()["points"] == [
        {"x": 1100.0, "y": 1100.0, "label": "positive"}]
    r = put_points(tab_b, session, 1, [{"x": 1100, "y": 1100, "label": "positive"},
                                       {"x": 1200, "y": 1200, "label": "negative"}])
    assert r.status_code == 200 and r.json()["version"] == 2


def test_bad_points_give_400_listing_offenders(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    client = client_for(personas["annotator"])
    r = put_points(client, session, 0, [{"x": 1100, "y": 1100, "label": "positive"},
                                        {"x": 50, "y": 50, "label": "positive"},
                                        {"x": 1100, "y": 1100, "label": "stroma"}])
    assert r.status_code == 400
    assert len(r.json()["problems"]) == 2
    assert r.json()["problems"][0].startswith("point 1:") and "stroma" in r.json()["problems"][1]
    assert put_points(client, session, "x", []).status_code == 400
    session.refresh_from_db()
    assert session.version == 0


def test_submit_accept_return_over_the_api(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    annot, path = client_for(personas["annotator"]), client_for(personas["pathologist"])
    put_points(annot, session, 0, [{"x": 1100, "y": 1100, "label": "positive"}])
    # submit, accept and return carry the version seen (test_submit_version)
    v1 = {"version": 1}
    assert annot.post(f"{API}/sessions/{session.pk}/accept/", v1, content_type="application/json").status_code == 403
    assert path.post(f"{API}/sessions/{session.pk}/accept/", v1,
                     content_type="application/json").status_code == 409  # not submitted yet
    assert path.post(f"{API}/sessions/{session.pk}/submit/", v1,
                     content_type="application/json").status_code == 403  # not the annotator
    r = annot.post(f"{API}/sessions/{session.pk}/submit/", v1, content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "submitted"
    assert put_points(annot, session, 1, []).status_code == 409  # locked once submitted
    r = path.post(f"{API}/sessions/{session.pk}/return/", {"comment": "", **v1}, content_type="application/json")
    assert r.status_code == 409 and "comment" in r.json()["detail"]
    r = path.post(f"{API}/sessions/{session.pk}/return/", {"comment": "add the negatives", **v1},
                  content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "returned" and r.json()["comment"] == "add the negatives"
    assert annot.get(f"{API}/sessions/{session.pk}/").json()["comment"] == "add the negatives"
    assert put_points(annot, session, 1, [{"x": 1100, "y": 1100, "label": "positive"},
                                          {"x": 1105, "y": 1300, "label": "negative"}]).status_code == 200
    annot.post(f"{API}/sessions/{session.pk}/submit/", {"version": 2}, content_type="application/json")
    r = client_for(personas["admin"]).post(f"{API}/sessions/{session.pk}/accept/", {"comment": "ok", "version": 2},
                                           content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "accepted" and r.json()["reviewed_by"] == "admin"
    assert r.json()["counts"] == {"positive": 1, "negative": 1}


def test_agreement_and_consensus_endpoints(personas):
    other = make_user(Role.ANNOTATOR, [personas["case"].department], username="annot2")
    _, field = project_with_field(personas, annotators=[personas["annotator"], other])
    for user, pts in ((personas["annotator"], [[1100, 1100, "positive"], [1200, 1200, "negative"]]),
                      (other, [[1102, 1100, "positive"], [1400, 1400, "negative"]])):
        client = client_for(user)
        s = session_of(field, user)
        put_points(client, s, 0, [{"x": x, "y": y, "label": lab} for x, y, lab in pts])
        client.post(f"{API}/sessions/{s.pk}/submit/", {"version": 1}, content_type="application/json")
    path = client_for(personas["pathologist"])
    r = path.get(f"{API}/fields/{field.pk}/agreement/?radius_um=4")
    assert r.status_code == 200, r.content
    pair = r.json()["pairs"][0]
    assert pair["matched"] == 1 and pair["f1"] == pytest.approx(0.5)
    assert pair["positive_pct_difference"] == pytest.approx(0.0)
    r = path.get(f"{API}/fields/{field.pk}/consensus/?radius_um=4")
    assert r.json()["points"] == [[1101.0, 1100.0, "positive"]] and r.json()["min_votes"] == 2
    assert path.get(f"{API}/fields/{field.pk}/agreement/?radius_um=-1").status_code == 400


def test_field_listing_is_scoped(personas):
    _, field = project_with_field(personas)
    assert [f["id"] for f in client_for(personas["pathologist"]).get(f"{API}/fields/").json()["results"]] == [field.pk]
    assert [f["id"] for f in client_for(personas["annotator"]).get(f"{API}/fields/").json()["results"]] == [field.pk]
    assert client_for(personas["outsider"]).get(f"{API}/fields/").json()["results"] == []
    assert Field.objects.count() == 1
