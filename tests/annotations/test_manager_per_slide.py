"""Managing an annotation project is per slide (issue 14, item 7): a pathologist who manages a
project by sharing one department with its creator neither sees nor manages its fields on another
department's slides, and cannot act on the whole project."""

import pytest

from annotations import services
from annotations.models import AnnotationSession
from cases.choices import Role
from tests.annotations import SlideFactory, client_for
from tests.factories import CaseFactory, make_user

pytestmark = pytest.mark.django_db

API = "/api/annotation"


@pytest.fixture
def split_project(personas):
    """A project of a pathologist of departments A and B, with one field on a slide of each.

    personas["pathologist"] (department A only) manages it through department A."""
    dept_a = personas["pathologist"].profile.departments.get()
    dept_b = personas["outsider"].profile.departments.get()
    creator = make_user(Role.PATHOLOGIST, [dept_a, dept_b], username="creator")
    annotator = make_user(Role.ANNOTATOR, [dept_a, dept_b], username="annotator-ab")
    slide_a = SlideFactory(case=personas["case"])
    slide_b = SlideFactory(case=CaseFactory(patient__department=dept_b))
    project = services.do_create_project(creator, "two departments", "lung_squamous", "PD-L1", (), [annotator])
    field_a = services.do_create_field(project, slide_a, 100, 100, 256, 256, user=creator)
    field_b = services.do_create_field(project, slide_b, 100, 100, 256, 256, user=creator)
    for field in (field_a, field_b):
        session = field.sessions.get()
        services.do_save_points(session, annotator, 0, [[200, 200, "positive"]])
        services.do_submit(session, annotator)
    return {"project": project, "creator": creator, "annotator": annotator, "a": field_a, "b": field_b,
            "colleague": personas["pathologist"]}


def test_the_colleague_still_manages_the_project(split_project):
    assert services.can_manage(split_project["colleague"], split_project["project"])


def test_fields_and_sessions_on_unseen_slides_are_hidden_from_the_colleague(split_project):
    sp, client = split_project, client_for(split_project["colleague"])
    r = client.get(f"{API}/fields/", {"project": sp["project"].pk})
    assert [f["id"] for f in r.json()["results"]] == [sp["a"].pk]
    assert client.get(f"{API}/fields/{sp['b'].pk}/").status_code == 404
    assert client.get(f"{API}/fields/{sp['b'].pk}/agreement/").status_code == 404
    assert client.get(f"{API}/fields/{sp['b'].pk}/consensus/").status_code == 404
    sessions = client.get(f"{API}/sessions/", {"field__project": sp["project"].pk}).json()["results"]
    assert [s["field"] for s in sessions] == [sp["a"].pk]
    session_b = sp["b"].sessions.get()
    assert client.get(f"{API}/sessions/{session_b.pk}/points/").status_code == 404
    assert client.get(f"{API}/sessions/{session_b.pk}/export/").status_code == 404
    assert client.post(f"{API}/sessions/{session_b.pk}/accept/", {}, content_type="application/json") \
        .status_code == 404
    session_b.refresh_from_db()
    assert session_b.status == "submitted"
    # the field on the slide the colleague sees is theirs to review
    session_a = sp["a"].sessions.get()
    r = client.post(f"{API}/sessions/{session_a.pk}/accept/", {"version": session_a.version},
                    content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "accepted"


def test_the_creator_who_sees_both_slides_sees_both_fields(split_project):
    sp = split_project
    r = client_for(sp["creator"]).get(f"{API}/fields/", {"project": sp["project"].pk})
    assert sorted(f["id"] for f in r.json()["results"]) == sorted([sp["a"].pk, sp["b"].pk])


def test_whole_project_actions_are_refused_to_the_colleague(split_project, personas):
    sp, client = split_project, client_for(split_project["colleague"])
    project = sp["project"]
    r = client.post(f"{API}/projects/{project.pk}/annotators/", {"annotators": ["annotator"]},
                    content_type="application/json")
    assert r.status_code == 403 and "may not see" in r.json()["detail"]
    assert not AnnotationSession.objects.filter(annotator=personas["annotator"]).exists()
    for action in ("export-dataset", "train-model"):
        r = client.post(f"{API}/projects/{project.pk}/{action}/", {"name": "x-model"}, content_type="application/json")
        assert r.status_code == 403 and "may not see" in r.json()["detail"], action
    with pytest.raises(services.NotAllowed):
        services.check_reviewer(sp["b"].sessions.get(), sp["colleague"])


def test_the_colleague_s_pages_show_only_fields_on_slides_they_see(split_project):
    sp, client = split_project, client_for(split_project["colleague"])
    html = client.get(f"/annotate/projects/{sp['project'].pk}/").content.decode()
    assert f"/annotate/fields/{sp['a'].pk}/" in html and f"/annotate/fields/{sp['b'].pk}/" not in html
    assert "1 field(s) of this project are on slides you may not see" in html
    assert client.get(f"/annotate/fields/{sp['b'].pk}/review/").status_code == 404
    assert client.get(f"/annotate/fields/{sp['a'].pk}/review/").status_code == 200
    session_b = sp["b"].sessions.get()
    assert client.get(f"/annotate/sessions/{session_b.pk}/").status_code == 404
    r = client.post(f"/annotate/sessions/{session_b.pk}/review/", {"action": "accept"})
    assert r.status_code == 404
    r = client.post(f"/annotate/projects/{sp['project'].pk}/annotators/", {"annotators": ["annotator"]})
    assert r.status_code == 400 and "may not see" in r.content.decode()
