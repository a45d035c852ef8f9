"""Submit carries the version of the points the annotator saw: a tab that was behind submitted points it never
showed (another tab had cleared them). Stale -> 409, nothing submitted; the API's submit, accept and return
require the version."""

import pytest

from annotations import services
from annotations.choices import SessionStatus
from annotations.models import AnnotationSession, StaleVersionError
from tests.annotations import client_for, project_with_field, session_of

pytestmark = pytest.mark.django_db

API = "/api/annotation"
THREE = [[1001, 1001, "positive"], [1002, 1100, "negative"], [1100, 1100, "negative"]]


def two_tabs(personas):
    """Tab A shows three points (version 1); tab B cleared them since (version 2)."""
    _, field = project_with_field(personas)
    annotator = personas["annotator"]
    session = session_of(field, annotator)
    services.do_save_points(session, annotator, 0, THREE)
    services.do_save_points(AnnotationSession.objects.get(pk=session.pk), annotator, 1, [])
    return session, annotator


def test_a_stale_tab_cannot_submit_over_the_api(personas):
    session, annotator = two_tabs(personas)
    client = client_for(annotator)
    r = client.post(f"{API}/sessions/{session.pk}/submit/", {"version": 1}, content_type="application/json")
    assert r.status_code == 409, r.content
    assert r.json()["current_version"] == 2 and r.json()["sent_version"] == 1
    assert "Nothing was submitted" in r.json()["detail"]
    session.refresh_from_db()
    assert session.status == SessionStatus.IN_PROGRESS and session.submitted_at is None
    r = client.post(f"{API}/sessions/{session.pk}/submit/", {"version": 2}, content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "submitted" and r.json()["version"] == 2


@pytest.mark.parametrize("body", [{}, {"version": None}, {"version": "x"}, {"version": -1}, {"version": 1.5}])
def test_submit_without_a_whole_version_is_refused(personas, body):
    session, annotator = two_tabs(personas)
    r = client_for(annotator).post(f"{API}/sessions/{session.pk}/submit/", body, content_type="application/json")
    assert r.status_code == 400 and "version" in r.json(), r.content
    assert AnnotationSession.objects.get(pk=session.pk).status == SessionStatus.IN_PROGRESS
    # who may comes first: someone else is told so, whatever they sent
    r = client_for(personas["pathologist"]).post(f"{API}/sessions/{session.pk}/submit/", body,
                                                 content_type="application/json")
    assert r.status_code == 403


def test_the_service_refuses_a_stale_submit(personas):
    session, annotator = two_tabs(personas)
    with pytest.raises(StaleVersionError) as err:
        services.do_submit(AnnotationSession.objects.get(pk=session.pk), annotator, 1)
    assert (err.value.current_version, err.value.sent) == (2, 1)
    with pytest.raises(services.AnnotationError, match="whole number"):
        services.do_submit(session, annotator, True)
    assert AnnotationSession.objects.get(pk=session.pk).status == SessionStatus.IN_PROGRESS


def test_accept_and_return_over_the_api_need_the_version_reviewed(personas):
    session, annotator = two_tabs(personas)
    services.do_submit(session, annotator, 2)
    path = client_for(personas["pathologist"])
    for action, body in (("accept", {}), ("return", {"comment": "more"})):
        r = path.post(f"{API}/sessions/{session.pk}/{action}/", body, content_type="application/json")
        assert r.status_code == 400 and "version" in r.json(), r.content
    r = path.post(f"{API}/sessions/{session.pk}/accept/", {"version": 1}, content_type="application/json")
    assert r.status_code == 409 and r.json()["current_version"] == 2
    assert AnnotationSession.objects.get(pk=session.pk).status == SessionStatus.SUBMITTED
    r = path.post(f"{API}/sessions/{session.pk}/accept/", {"version": 2}, content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "accepted"


def test_the_review_page_needs_the_version_reviewed(personas):
    session, annotator = two_tabs(personas)
    services.do_submit(session, annotator, 2)
    r = client_for(personas["pathologist"]).post(f"/annotate/sessions/{session.pk}/review/", {"action": "accept"},
                                                 follow=True)
    assert "not changed" in r.content.decode()
    assert AnnotationSession.objects.get(pk=session.pk).status == SessionStatus.SUBMITTED
