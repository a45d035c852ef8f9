"""Models and services: label sets, fields, points (validation, conflicts, history), transitions."""

import pytest

from annotations import services
from annotations.choices import SessionStatus
from annotations.models import AnnotationRevision, AnnotationSession, Field, TransitionError
from cases.choices import Role
from tests.annotations import SlideFactory, project_with_field, session_of
from tests.factories import DepartmentFactory, make_user

pytestmark = pytest.mark.django_db


def test_project_has_positive_and_negative_then_extra_labels(personas):
    project, _ = project_with_field(personas, extra_labels=[{"name": "Immune", "colour": "#00FF00"}])
    assert project.labels[0] == {"name": "positive", "title": "PD-L1-positive tumour nucleus", "colour": "#dc1e28"}
    assert project.labels[1]["name"] == "negative" and project.labels[1]["colour"] == "#f5c800"  # analysis.labels
    assert project.label_names == ["positive", "negative", "immune"]


def test_bad_label_set_lists_every_problem():
    with pytest.raises(services.AnnotationError) as err:
        services.check_labels([{"name": "positive"}, {"colour": "#fff"}, {"name": "x", "colour": "red"}])
    assert len(err.value.problems) == 3
    assert "given twice" in str(err.value) and "needs a name" in str(err.value) and "#rrggbb" in str(err.value)


def test_fields_and_sessions_for_every_annotator(personas):
    second = make_user(Role.ANNOTATOR, [personas["case"].department], username="annot2")
    project, field = project_with_field(personas, annotators=[personas["annotator"], second])
    assert field.region == [1000, 1000, 512, 512]
    assert set(field.sessions.values_list("annotator__username", flat=True)) == {"annotator", "annot2"}
    # A field added later gets sessions too; an annotator added later gets sessions on every field.
    f2 = services.do_create_field(project, field.slide, 0, 0, 100, 100)
    assert f2.sessions.count() == 2
    third = make_user(Role.ANNOTATOR, [personas["case"].department], username="annot3")
    services.do_assign_annotators(project, [third])
    assert AnnotationSession.objects.filter(annotator=third).count() == 2


def test_region_outside_slide_is_rejected_and_nothing_created(personas):
    project, field = project_with_field(personas)
    with pytest.raises(services.AnnotationError, match="not inside the 8000x6000 slide"):
        services.do_create_field(project, field.slide, 7900, 0, 512, 512)
    assert Field.objects.count() == 1


def test_annotator_without_access_to_the_slide_cannot_be_assigned(personas):
    other = make_user(Role.ANNOTATOR, [DepartmentFactory(code="dept-c")], username="far")
    project, field = project_with_field(personas)
    with pytest.raises(services.AnnotationError, match="far.*no access to slide"):
        services.do_assign_annotators(project, [other])
    assert not project.annotators.filter(pk=other.pk).exists()
    with pytest.raises(services.AnnotationError, match="is not an annotator"):
        services.do_assign_annotators(project, [personas["clinician"]])


def test_save_points_and_history(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    services.do_save_points(session, personas["annotator"], 0, [{"x": 1000, "y": 1000, "label": "positive"}])
    assert session.version == 1 and session.status == SessionStatus.IN_PROGRESS
    services.do_save_points(session, personas["annotator"], 1, [{"x": 1500.5, "y": 1200, "label": "Negative"}])
    assert session.points == [[1500.5, 1200.0, "negative"]]
    revisions = list(AnnotationRevision.objects.filter(session=session).values_list("version", "points"))
    assert revisions == [(1, [[1000.0, 1000.0, "positive"]]), (2, [[1500.5, 1200.0, "negative"]])]


def test_stale_version_conflicts_and_overwrites_nothing(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    tab_a = AnnotationSession.objects.get(pk=session.pk)
    tab_b = AnnotationSession.objects.get(pk=session.pk)
    services.do_save_points(tab_a, personas["annotator"], 0, [[1001, 1001, "positive"]])
    with pytest.raises(services.ConflictError, match="based on version 0, but version 1 was saved") as err:
        services.do_save_points(tab_b, personas["annotator"], 0, [[1002, 1002, "negative"]])
    assert err.value.current_version == 1
    session.refresh_from_db()
    assert session.points == [[1001.0, 1001.0, "positive"]] and session.version == 1


def test_points_outside_or_with_unknown_labels_are_all_listed_and_nothing_saved(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    points = [{"x": 1000, "y": 1000, "label": "positive"}, {"x": 999, "y": 1000, "label": "positive"},
              {"x": 1100, "y": 1100, "label": "tumour"}, {"x": "a", "y": 1, "label": "negative"},
              {"x": 1511.4, "y": 1511.4, "label": "negative"}, {"x": 1511.5, "y": 1000, "label": "negative"}]
    with pytest.raises(services.AnnotationError) as err:
        services.do_save_points(session, personas["annotator"], 0, points)
    text = str(err.value)
    assert "4 problem(s)" in text
    assert "point 1:" in text and "outside the field" in text
    assert "point 2: unknown label 'tumour'" in text and "point 3:" in text and "point 5:" in text
    session.refresh_from_db()
    assert session.version == 0 and session.points == []


def test_transitions(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    with pytest.raises(TransitionError):
        session.accept(personas["pathologist"])
    services.do_submit(session, personas["annotator"])
    assert session.status == SessionStatus.SUBMITTED and session.submitted_at
    with pytest.raises(TransitionError, match="locked"):
        services.do_save_points(session, personas["annotator"], 0, [])
    with pytest.raises(TransitionError, match="needs a comment"):
        services.do_return(session, personas["pathologist"], " ")
    services.do_return(session, personas["pathologist"], "missed the upper left cluster")
    assert session.status == SessionStatus.RETURNED and session.reviewed_by == personas["pathologist"]
    services.do_save_points(session, personas["annotator"], 0, [[1001, 1001, "positive"]])
    assert session.status == SessionStatus.RETURNED  # still returned until submitted again
    services.do_submit(session, personas["annotator"])
    with pytest.raises(services.NotAllowed):
        services.do_accept(session, personas["outsider"])
    services.do_accept(session, personas["pathologist"], "good")
    assert session.status == SessionStatus.ACCEPTED
    with pytest.raises(TransitionError):
        session.submit()


def test_annotator_cannot_review_own_session(personas):
    project, field = project_with_field(personas, annotators=[personas["pathologist"]])
    session = session_of(field, personas["pathologist"])
    services.do_submit(session, personas["pathologist"])
    with pytest.raises(services.NotAllowed, match="own session"):
        services.do_accept(session, personas["pathologist"])
    services.do_accept(session, personas["admin"])


def test_session_changes_are_audited(personas):
    from auditlog.models import LogEntry

    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    services.do_submit(session, personas["annotator"])
    entries = LogEntry.objects.get_for_object(session)
    assert any(e.changes_dict.get("status") == ["assigned", "submitted"] for e in entries)
    assert not any("points" in e.changes_dict for e in entries)  # kept whole in AnnotationRevision


def test_slide_without_case_access_is_not_pseudonymous_for_annotator(personas):
    slide = SlideFactory()  # no case: annotators of dept A cannot see it
    project, _ = project_with_field(personas)
    with pytest.raises(services.AnnotationError, match="no access to slide"):
        services.do_create_field(project, slide, 0, 0, 100, 100)
    assert project.fields.count() == 1


def test_two_reviewers_with_the_same_page_cannot_both_decide(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    services.do_submit(session, personas["annotator"])
    first, second = AnnotationSession.objects.get(pk=session.pk), AnnotationSession.objects.get(pk=session.pk)
    services.do_accept(first, personas["pathologist"], "good")
    with pytest.raises(TransitionError, match="only a submitted session can be reviewed"):
        services.do_return(second, personas["admin"], "too late: it is accepted")
    session.refresh_from_db()
    assert session.status == SessionStatus.ACCEPTED and session.reviewed_by == personas["pathologist"]


def test_a_session_resubmitted_since_the_review_page_loaded_is_not_accepted_unseen(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    services.do_submit(session, personas["annotator"])
    seen = session.version  # what the reviewer's page shows
    services.do_return(session, personas["admin"], "add the lower field")
    services.do_save_points(session, personas["annotator"], seen, [[1001, 1001, "positive"]])
    services.do_submit(session, personas["annotator"])
    with pytest.raises(TransitionError, match="changed since you loaded it"):
        services.do_accept(session, personas["pathologist"], "", version=seen)
    assert AnnotationSession.objects.get(pk=session.pk).status == SessionStatus.SUBMITTED
    services.do_accept(session, personas["pathologist"], "", version=seen + 1)
    assert AnnotationSession.objects.get(pk=session.pk).status == SessionStatus.ACCEPTED


def test_a_coordinate_too_large_for_a_float_is_a_clear_refusal(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    with pytest.raises(services.AnnotationError, match="x and y must be numbers"):
        services.do_save_points(session, personas["annotator"], 0, [{"x": 10 ** 400, "y": 5, "label": "positive"}])
    session.refresh_from_db()
    assert session.version == 0 and session.points == []


def test_the_admin_cannot_move_a_field_or_a_session_once_accepted(personas):
    from django.contrib.admin.sites import site
    from django.test import RequestFactory

    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    request = RequestFactory().get("/admin/")
    request.user = make_user(None, username="root", is_staff=True, is_superuser=True)
    field_admin, session_admin = site._registry[Field], site._registry[AnnotationSession]
    assert "x" not in field_admin.get_readonly_fields(request, field)  # nothing accepted yet: fixable
    services.do_submit(session, personas["annotator"])
    services.do_accept(session, personas["pathologist"])
    assert {"slide", "x", "y", "width", "height"} <= set(field_admin.get_readonly_fields(request, field))
    assert {"status", "field", "annotator", "points"} <= set(session_admin.get_readonly_fields(request, session))
