"""The reviewer's pages: projects, a field's review (every annotator's points, agreement,
accept/return), read-only views of others' sessions, and the training button."""

import json

import pytest

from annotations import services
from annotations.choices import SessionStatus
from cases.choices import Role
from tests.annotations import client_for, project_with_field, session_of
from tests.factories import make_user

pytestmark = pytest.mark.django_db

A = [[1100, 1100, "positive"], [1200, 1200, "negative"], [1300, 1300, "negative"]]
B = [[1101, 1101, "positive"], [1200, 1201, "positive"], [1400, 1400, "negative"]]


def config_of(html, name):
    return json.loads(html.split(f'id="{name}" type="application/json">')[1].split("</script>")[0])


def two_submitted(personas):
    second = make_user(Role.ANNOTATOR, [personas["case"].department], username="annot2")
    project, field = project_with_field(personas, annotators=[personas["annotator"], second])
    for user, points in ((personas["annotator"], A), (second, B)):
        session = session_of(field, user)
        services.do_save_points(session, user, 0, points)
        services.do_submit(session, user)
    return project, field, second


def test_project_pages_show_progress_to_the_projects_reviewers_only(personas):
    project, field, _ = two_submitted(personas)
    client = client_for(personas["pathologist"])
    listing = client.get("/annotate/projects/").content.decode()
    assert f"/annotate/projects/{project.pk}/" in listing and "<b>2</b>" in listing  # two to review
    page = client.get(f"/annotate/projects/{project.pk}/").content.decode()
    assert f"/annotate/fields/{field.pk}/review/" in page
    assert "annotator: submitted (3)" in page and "annot2: submitted (3)" in page
    assert "Train a new model" in page
    assert client_for(personas["annotator"]).get("/annotate/projects/").status_code == 403
    assert client_for(personas["outsider"]).get(f"/annotate/projects/{project.pk}/").status_code == 404
    assert client_for(personas["outsider"]).get(f"/annotate/fields/{field.pk}/review/").status_code == 404
    assert client_for(personas["annotator"]).get(f"/annotate/fields/{field.pk}/review/").status_code == 403


def test_field_review_shows_each_annotator_in_its_own_style_with_agreement(personas):
    _, field, _ = two_submitted(personas)
    html = client_for(personas["pathologist"]).get(f"/annotate/fields/{field.pk}/review/").content.decode()
    config = config_of(html, "review-config")
    layers = {layer["annotator"]: layer for layer in config["layers"]}
    assert set(layers) == {"annotator", "annot2"}
    assert layers["annotator"]["shape"] != layers["annot2"]["shape"]
    assert layers["annotator"]["points"] == [[float(x), float(y), lab] for x, y, lab in A]
    assert all(layer["visible"] for layer in layers.values())
    # 2 of 3 points match within 4 µm (0.25 µm/px slide): F1 = 2*2/6; one matched pair disagrees on the label
    assert "0.667" in html and "0.500" in html
    assert len(config["consensus"]) == 2  # points found by both
    assert html.count('name="action" value="accept"') == 2
    patient = personas["case"].patient
    for secret in (patient.mrn, patient.family_name, personas["case"].accession):
        assert secret not in html


def test_accept_and_return_from_the_review_page(personas):
    _, field, second = two_submitted(personas)
    client = client_for(personas["pathologist"])
    first = session_of(field, personas["annotator"])
    url = f"/annotate/sessions/{first.pk}/review/"
    # the form posts the version the page showed (required: test_submit_version)
    page = client.post(url, {"action": "return", "comment": "x"}, follow=True).content.decode()
    assert "not changed" in page
    # returning needs a comment: nothing changes and the page says why
    page = client.post(url, {"action": "return", "comment": "  ", "version": 1}, follow=True).content.decode()
    assert "needs a comment" in page
    first.refresh_from_db()
    assert first.status == SessionStatus.SUBMITTED
    page = client.post(url, {"action": "return", "comment": "Missed the cluster at the top left", "version": 1},
                       follow=True).content.decode()
    first.refresh_from_db()
    assert first.status == SessionStatus.RETURNED and first.reviewed_by == personas["pathologist"]
    assert "returned to the annotator" in page and "Missed the cluster at the top left" in page
    # the annotator sees the comment and may edit again
    listing = client_for(personas["annotator"]).get("/annotate/sessions/").content.decode()
    assert "Missed the cluster at the top left" in listing
    other = session_of(field, second)
    client.post(f"/annotate/sessions/{other.pk}/review/", {"action": "accept", "version": 1})
    other.refresh_from_db()
    assert other.status == SessionStatus.ACCEPTED
    # a second decision on a reviewed session is refused and changes nothing
    page = client.post(f"/annotate/sessions/{other.pk}/review/", {"action": "return", "comment": "x", "version": 1},
                       follow=True).content.decode()
    assert "not changed" in page
    other.refresh_from_db()
    assert other.status == SessionStatus.ACCEPTED
    assert client.get(f"/annotate/sessions/{other.pk}/review/").status_code == 405
    # annotators cannot review
    third = session_of(field, second)
    assert client_for(second).post(f"/annotate/sessions/{third.pk}/review/", {"action": "accept"}).status_code == 403


def test_reviewer_sees_another_annotators_session_read_only(personas):
    _, field, _ = two_submitted(personas)
    session = session_of(field, personas["annotator"])
    services.do_return(session, personas["pathologist"], "redo")
    client = client_for(personas["pathologist"])
    html = client.get(f"/annotate/sessions/{session.pk}/").content.decode()
    config = config_of(html, "annotate-config")
    assert config["own"] is False and config["editable"] is False  # returned = editable for its annotator only
    assert "Read-only" in html and 'id="submit" class="primary" hidden' in html
    assert client.get(f"/api/annotation/sessions/{session.pk}/points/").json()["points"][0]["x"] == 1100
    r = client.put(f"/api/annotation/sessions/{session.pk}/points/", {"version": 1, "points": []},
                   content_type="application/json")
    assert r.status_code == 403
    session.refresh_from_db()
    assert len(session.points) == 3
    own = client_for(personas["annotator"]).get(f"/annotate/sessions/{session.pk}/").content.decode()
    assert config_of(own, "annotate-config")["editable"] is True and "Read-only" not in own
