"""A pathologist who also annotates a field does not see the other annotators' points (their layers, sessions,
consensus or agreement) while their own session of that field is open (assigned, in progress or returned):
their set must be their own, or the consensus counts one opinion twice."""

import pytest

from annotations import services
from cases.choices import Role
from tests.annotations import client_for, project_with_field, session_of
from tests.factories import make_user

pytestmark = pytest.mark.django_db

API = "/api/annotation"


@pytest.fixture
def blind(personas):
    """path2 manages the project (same department as its creator) and annotates its field; the annotator has
    submitted, path2 has not."""
    path2 = make_user(Role.PATHOLOGIST, [personas["case"].department], username="path2")
    project, field = project_with_field(personas, annotators=[personas["annotator"], path2])
    other = session_of(field, personas["annotator"])
    services.do_save_points(other, personas["annotator"], 0, [[1100, 1100, "positive"]])
    services.do_submit(other, personas["annotator"], 1)
    mine = session_of(field, path2)
    services.do_save_points(mine, path2, 0, [[1300, 1300, "negative"]])
    return {"project": project, "field": field, "other": other, "mine": mine, "path2": path2}


def test_the_others_points_consensus_and_agreement_are_refused_while_the_own_session_is_open(personas, blind):
    assert services.can_manage(blind["path2"], blind["project"])
    client, field, other = client_for(blind["path2"]), blind["field"], blind["other"]
    for what in ("consensus", "agreement"):
        r = client.get(f"{API}/fields/{field.pk}/{what}/")
        assert r.status_code == 403 and "your own session is still open" in r.json()["detail"]
    r = client.get(f"/annotate/fields/{field.pk}/review/", follow=True)
    assert r.redirect_chain[-1][0] == f"/annotate/sessions/{blind['mine'].pk}/"
    assert "Review of field" in r.content.decode() and "submit it before you see" in r.content.decode()
    # the other annotator's session: hidden, as if it did not exist
    assert client.get(f"/annotate/sessions/{other.pk}/").status_code == 404
    assert client.get(f"{API}/sessions/{other.pk}/points/").status_code == 404
    assert client.get(f"{API}/sessions/{other.pk}/export/?fmt=csv").status_code == 404
    assert [s["id"] for s in client.get(f"{API}/sessions/").json()["results"]] == [blind["mine"].pk]
    r = client.post(f"/annotate/sessions/{other.pk}/review/", {"action": "accept", "version": other.version})
    assert r.status_code == 404
    with pytest.raises(services.NotAllowed, match="your own session is still open"):
        services.do_accept(other, blind["path2"], version=other.version)
    # the project page shows no point counts of the others there, and no review link
    page = client.get(f"/annotate/projects/{blind['project'].pk}/").content.decode()
    assert "annotator: submitted (1)" not in page and "annotator: submitted" in page and "path2: in progress (1)" in page
    assert f"/annotate/fields/{field.pk}/review/" not in page and "after your own" in page


def test_once_submitted_the_others_are_shown_and_again_hidden_when_returned(personas, blind):
    client, field = client_for(blind["path2"]), blind["field"]
    services.do_submit(blind["mine"], blind["path2"], 1)
    r = client.get(f"{API}/fields/{field.pk}/consensus/")
    assert r.status_code == 200 and r.json()["annotators"] == ["annotator", "path2"]
    assert client.get(f"/annotate/fields/{field.pk}/review/").status_code == 200
    assert client.get(f"{API}/sessions/{blind['other'].pk}/points/").status_code == 200
    services.do_return(blind["mine"], personas["pathologist"], "add the lower nuclei", version=1)
    assert client.get(f"{API}/fields/{field.pk}/consensus/").status_code == 403
    assert client.get(f"{API}/sessions/{blind['other'].pk}/points/").status_code == 404


def test_a_reviewer_who_does_not_annotate_the_field_sees_everything(personas, blind):
    client = client_for(personas["pathologist"])
    assert client.get(f"{API}/fields/{blind['field'].pk}/agreement/").status_code == 200
    assert client.get(f"/annotate/fields/{blind['field'].pk}/review/").status_code == 200
    assert client.get(f"{API}/sessions/{blind['mine'].pk}/points/").status_code == 200
