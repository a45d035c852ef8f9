"""The review page's accept/return answers a refusal with a message, never a server error."""

import pytest

from annotations import services
from annotations.choices import SessionStatus
from annotations.models import Field
from tests.annotations import client_for, project_with_field, session_of

pytestmark = pytest.mark.django_db


def test_accepting_points_that_no_longer_fit_the_field_is_refused_on_the_page(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    services.do_save_points(session, personas["annotator"], 0, [[1100, 1100, "positive"]])
    services.do_submit(session, personas["annotator"])
    Field.objects.filter(pk=field.pk).update(x=1200)  # data from before the admin locked the field
    r = client_for(personas["pathologist"]).post(f"/annotate/sessions/{session.pk}/review/",
                                                 {"action": "accept", "version": session.version}, follow=True)
    assert r.status_code == 200
    html = r.content.decode()
    assert f"Session {session.pk} of annotator not changed" in html and "outside the field" in html
    session.refresh_from_db()
    assert session.status == SessionStatus.SUBMITTED
