"""Consensus: ties are uncertain (not positive), points of a minority are kept apart, and one annotator's set
is no consensus (review.consensus and the field's consensus in the API and on the review page)."""

import pytest

from annotations import review, services
from cases.choices import Role
from tests.annotations import client_for, project_with_field, session_of
from tests.factories import make_user

API = "/api/annotation"


def test_points_found_by_a_minority_are_returned_apart():
    sets = {"a": [[0, 0, "positive"], [50, 50, "negative"]], "b": [[1, 0, "positive"]], "c": [[100, 100, "negative"]]}
    out = review.consensus(sets, 3)
    assert out["points"] == [[0.5, 0.0, "positive"]]
    assert [(u["x"], u["y"], u["found_by"]) for u in out["unconfirmed"]] == [(50.0, 50.0, 1), (100.0, 100.0, 1)]
    assert out["uncertain"] == []


def test_a_three_way_split_is_uncertain_and_a_two_to_one_vote_is_not():
    three = {"a": [[0, 0, "positive"]], "b": [[1, 0, "negative"]], "c": [[0, 1, "immune"]]}
    assert review.consensus(three, 3)["points"] == [] and review.consensus(three, 3)["label_ties"] == 1
    two_one = {"a": [[0, 0, "negative"]], "b": [[1, 0, "negative"]], "c": [[0, 1, "positive"]]}
    out = review.consensus(two_one, 3)
    assert out["points"] == [[0.33, 0.33, "negative"]] and out["uncertain"] == []


def test_one_annotator_is_no_consensus():
    with pytest.raises(review.TooFewAnnotators, match="at least 2 annotators"):
        review.consensus({"a": [[0, 0, "negative"], [50, 50, "positive"]]}, 3)
    with pytest.raises(review.TooFewAnnotators):
        review.consensus({}, 3)


@pytest.mark.django_db
def test_the_field_consensus_of_one_submitted_set_is_refused_with_a_reason(personas):
    second = make_user(Role.ANNOTATOR, [personas["case"].department], username="annot2")
    _, field = project_with_field(personas, annotators=[personas["annotator"], second])
    session = session_of(field, personas["annotator"])
    services.do_save_points(session, personas["annotator"], 0, [[1100, 1100, "positive"]])
    services.do_submit(session, personas["annotator"])
    path = client_for(personas["pathologist"])
    r = path.get(f"{API}/fields/{field.pk}/consensus/")
    assert r.status_code == 400 and "at least 2 annotators" in r.json()["problems"][0]
    assert "only annotator" in r.json()["problems"][0]
    assert path.get(f"{API}/fields/{field.pk}/consensus/?fmt=geojson").status_code == 400
    html = path.get(f"/annotate/fields/{field.pk}/review/").content.decode()
    assert "none: needs two or more submitted or accepted sets" in html and "at least 2 annotators" in html


@pytest.mark.django_db
def test_a_tied_nucleus_is_uncertain_in_the_api_and_a_grey_ring_on_the_review_page(personas):
    import json

    second = make_user(Role.ANNOTATOR, [personas["case"].department], username="annot2")
    _, field = project_with_field(personas, annotators=[personas["annotator"], second])
    for user, label in ((personas["annotator"], "positive"), (second, "negative")):
        session = session_of(field, user)
        services.do_save_points(session, user, 0, [[1100, 1100, label], [1300, 1300, "negative"]])
        services.do_submit(session, user)
    path = client_for(personas["pathologist"])
    body = path.get(f"{API}/fields/{field.pk}/consensus/").json()
    assert body["points"] == [[1300.0, 1300.0, "negative"]]
    assert body["uncertain"] == [{"x": 1100.0, "y": 1100.0, "votes": {"negative": 1, "positive": 1}, "found_by": 2}]
    geo = path.get(f"{API}/fields/{field.pk}/consensus/?fmt=geojson").json()
    assert [f["geometry"]["coordinates"] for f in geo["features"]] == [[[1300.0, 1300.0]]]
    html = path.get(f"/annotate/fields/{field.pk}/review/").content.decode()
    config = json.loads(html.split('id="review-config" type="application/json">')[1].split("</script>")[0])
    assert config["consensus"] == [[1300.0, 1300.0, "negative"], [1100.0, 1100.0, "uncertain"]]
    assert "1 uncertain" in html
