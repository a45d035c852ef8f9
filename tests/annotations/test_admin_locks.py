"""What the Django admin may no longer change under saved work: a field's slide and rectangle once a session has
points (they ended up outside it and the export clamped them onto its corner), a project's marker and labels once
it has fields/sessions, and annotators (added there they skipped check_annotators and got no sessions). Accepting
and exporting check the points against the field again."""

import json

import pytest

from analysis import datasets
from annotations import dataset, services
from annotations.choices import SessionStatus
from annotations.models import AnnotationProject, AnnotationSession, Field
from cases.choices import Role
from tests.annotations import client_for, project_with_field, session_of
from tests.factories import make_user
from tests.workers.conftest import synthetic_slide, synthetic_slide_file  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db


def superuser():
    return make_user(None, username="root", is_staff=True, is_superuser=True)


def field_form(field, **changes):
    return {"project": field.project_id, "slide": field.slide_id, "x": field.x, "y": field.y, "width": field.width,
            "height": field.height, "source": field.source, "tissue_fraction": "", "created_by": "", **changes}


def test_the_admin_cannot_move_a_field_once_a_session_has_points(personas):
    _, field = project_with_field(personas)
    admin = client_for(superuser())
    url = f"/admin/annotations/field/{field.pk}/change/"
    # nobody started: still fixable
    assert admin.post(url, field_form(field, x=1100)).status_code == 302
    field.refresh_from_db()
    assert field.x == 1100
    session = session_of(field, personas["annotator"])
    services.do_save_points(session, personas["annotator"], 0, [[1200, 1200, "positive"]])
    r = admin.post(url, field_form(field, x=3000, y=3000, width=64))
    assert r.status_code == 302
    field.refresh_from_db()
    assert field.region == [1100, 1000, 512, 512]  # the geometry is read-only now: the post changed nothing
    # an in-progress session emptied again still locks it (it has left "assigned")
    services.do_save_points(session, personas["annotator"], 1, [])
    assert field.worked_on


def test_fields_and_sessions_are_not_added_in_the_admin(personas):
    _, field = project_with_field(personas)
    admin = client_for(superuser())
    assert admin.get("/admin/annotations/field/add/").status_code == 403
    assert admin.get("/admin/annotations/annotationsession/add/").status_code == 403


def test_the_admin_cannot_change_a_projects_marker_labels_or_annotators_under_its_sessions(personas):
    project, field = project_with_field(personas)
    stranger = make_user(Role.ANNOTATOR, [], username="stranger")  # sees no slide of the project
    admin = client_for(superuser())
    url = f"/admin/annotations/annotationproject/{project.pk}/change/"
    r = admin.post(url, {"name": "renamed", "indication": "lung_squamous", "marker": "Ki67",
                         "labels": json.dumps([{"name": "x"}]), "created_by": personas["pathologist"].pk,
                         "annotators": [personas["annotator"].pk, stranger.pk]})
    assert r.status_code == 302
    project.refresh_from_db()
    assert project.name == "renamed"  # the rest stays editable
    assert project.marker == "PD-L1" and project.label_names == ["positive", "negative"]
    assert list(project.annotators.values_list("username", flat=True)) == ["annotator"]
    assert not AnnotationSession.objects.filter(annotator=stranger).exists()
    # a project with no field yet: its marker and labels may still be set
    empty = services.do_create_project(personas["pathologist"], "empty", "lung_squamous", "PD-L1", [], [])
    r = admin.post(f"/admin/annotations/annotationproject/{empty.pk}/change/", {
        "name": "empty", "indication": "lung_squamous", "marker": "Ki67",
        "labels": json.dumps(empty.labels), "created_by": personas["pathologist"].pk})
    assert r.status_code == 302 and AnnotationProject.objects.get(pk=empty.pk).marker == "Ki67"


def submitted(personas, points):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    services.do_save_points(session, personas["annotator"], 0, points)
    services.do_submit(session, personas["annotator"])
    return field, session


def test_accept_checks_the_points_against_the_field_and_labels_again(personas):
    field, session = submitted(personas, [[1100, 1100, "positive"], [1200, 1200, "negative"]])
    Field.objects.filter(pk=field.pk).update(x=1150)  # as an older admin could
    session.refresh_from_db()
    with pytest.raises(services.AnnotationError, match="not accepted") as err:
        services.do_accept(session, personas["pathologist"])
    assert "point 0: (1100.0, 1100.0) is outside the field" in err.value.problems[0]
    session.refresh_from_db()
    assert session.status == SessionStatus.SUBMITTED
    r = client_for(personas["pathologist"]).post(f"/api/annotation/sessions/{session.pk}/accept/",
                                                 {"version": session.version}, content_type="application/json")
    assert r.status_code == 400 and "outside the field" in r.json()["problems"][0]
    Field.objects.filter(pk=field.pk).update(x=1000)
    AnnotationProject.objects.filter(pk=field.project_id).update(labels=[{"name": "positive"}])
    session.refresh_from_db()
    with pytest.raises(services.AnnotationError, match="not accepted") as err:
        services.do_accept(session, personas["pathologist"])
    assert "unknown label 'negative'" in err.value.problems[0]
    assert AnnotationSession.objects.get(pk=session.pk).status == SessionStatus.SUBMITTED


def test_the_export_refuses_a_point_outside_its_field_instead_of_clamping_it(personas, synthetic_slide, tmp_path):  # noqa: F811
    project = services.do_create_project(personas["pathologist"], "p", "lung_squamous", "PD-L1", [],
                                         [personas["annotator"]])
    field = services.do_create_field(project, synthetic_slide, 100, 100, 128, 128)
    session = session_of(field, personas["annotator"])
    services.do_save_points(session, personas["annotator"], 0, [[110, 110, "positive"], [200, 200, "negative"]])
    services.do_submit(session, personas["annotator"])
    services.do_accept(session, personas["pathologist"])
    Field.objects.filter(pk=field.pk).update(x=150, y=150)  # data from before the lock
    with pytest.raises(services.AnnotationError, match=r"point 0 \(110.0, 110.0\) is outside field"):
        dataset.do_export_dataset(dataset.accepted_sessions(project), tmp_path / "ds", mpp=1.0)
    assert not (tmp_path / "ds").exists()
    with pytest.raises(datasets.DatasetError, match="1 accepted point"):
        datasets.load_source("db:PD-L1", 0.5)


def test_a_field_moved_in_the_admin_before_any_work_obeys_the_rules_it_was_made_under(personas):
    """Outside the slide, onto another field of the project, onto a slide of another marker, or into another
    project: refused, nothing changed (the project page checks all of these when a field is made)."""
    from tests.viewer import SlideFactory

    project, field = project_with_field(personas)
    other = services.do_create_field(project, field.slide, 2000, 1000, 512, 512, user=personas["pathologist"])
    ki67 = SlideFactory(case=personas["case"], marker="Ki67")
    other_project = services.do_create_project(personas["pathologist"], "other", "lung_squamous", "PD-L1", (), [])
    admin = client_for(superuser())
    url = f"/admin/annotations/field/{field.pk}/change/"
    for change in ({"x": 1800}, {"x": field.slide.width}, {"slide": ki67.pk}):
        r = admin.post(url, field_form(field, **change))
        assert r.status_code == 200, change  # the form again, with the reason
        field.refresh_from_db()
        assert field.region == [1000, 1000, 512, 512] and field.slide_id != ki67.pk
    admin.post(url, field_form(field, project=other_project.pk, x=1200))
    field.refresh_from_db()
    assert field.project_id == project.pk and field.x == 1200  # moved within the rules; the project stays
    assert other.region == [2000, 1000, 512, 512]
