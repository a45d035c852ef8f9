"""The blind rule in the Django admin: a staff user who annotates a field too does not see the other
annotators' sessions or their saved history of that field while their own session is open."""

import pytest

from annotations import services
from cases.choices import Role
from tests.annotations import client_for, project_with_field, session_of
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_staff_annotator_with_an_open_session_does_not_see_the_others_points_in_the_admin(personas):
    dept = personas["case"].patient.department
    staff = make_user(Role.PATHOLOGIST, [dept], username="staffpath", is_staff=True, is_superuser=True)
    _, field = project_with_field(personas, annotators=[personas["annotator"], staff])
    theirs, mine = session_of(field, personas["annotator"]), session_of(field, staff)
    services.do_save_points(theirs, personas["annotator"], 0, [[1200, 1200, "positive"]])
    services.do_save_points(mine, staff, 0, [[1300, 1300, "negative"]])
    admin = client_for(staff)

    def listed(model):
        return list(admin.get(f"/admin/annotations/{model}/").context["cl"].result_list)

    assert listed("annotationsession") == [mine]
    assert [r.session for r in listed("annotationrevision")] == [mine]
    assert admin.get(f"/admin/annotations/annotationsession/{theirs.pk}/change/").status_code == 302  # not found
    revision = theirs.revisions.get()
    assert admin.get(f"/admin/annotations/annotationrevision/{revision.pk}/change/").status_code == 302

    services.do_submit(mine, staff, mine.version)  # their own set is in: now they may compare
    assert set(listed("annotationsession")) == {mine, theirs}
    assert admin.get(f"/admin/annotations/annotationsession/{theirs.pk}/change/").status_code == 200
    assert len(listed("annotationrevision")) == 2


def test_a_staff_user_who_does_not_annotate_the_field_sees_every_session(personas):
    _, field = project_with_field(personas)
    services.do_save_points(session_of(field, personas["annotator"]), personas["annotator"], 0,
                            [[1200, 1200, "positive"]])
    admin = client_for(make_user(None, username="root", is_staff=True, is_superuser=True))
    assert len(admin.get("/admin/annotations/annotationsession/").context["cl"].result_list) == 1
