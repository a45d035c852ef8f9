"""The one definition of a user's departments (cases.access) that forms, serializers and annotations use."""

import pytest
from django.contrib.auth import get_user_model

from cases import access
from cases.models import Department

pytestmark = pytest.mark.django_db


def test_user_departments_and_filing_departments(personas):
    own = set(access.user_departments(personas["pathologist"]).values_list("code", flat=True))
    other = set(access.user_departments(personas["outsider"]).values_list("code", flat=True))
    assert own == {"dept-a"} and other == {"dept-b"}
    assert set(access.filing_departments(personas["pathologist"])) == set(access.user_departments(personas["pathologist"]))
    assert set(access.filing_departments(personas["admin"])) == set(Department.objects.all())


def test_a_user_without_a_profile_has_no_department():
    user = get_user_model().objects.create_user("no-profile")
    assert not hasattr(user, "profile") or not user.profile.departments.exists()
    assert list(access.user_departments(user)) == [] and list(access.filing_departments(user)) == []
