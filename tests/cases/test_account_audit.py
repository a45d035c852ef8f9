"""Roles, permissions, account flags and API tokens are audited; deleting an account keeps its name."""

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from rest_framework.test import APIClient

from cases.auth import do_issue_token, do_revoke_tokens

pytestmark = pytest.mark.django_db


def user_entries(user):
    return LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(get_user_model()),
                                   object_pk=str(user.pk)).order_by("pk")


@pytest.fixture
def web(personas):
    admin = personas["admin"]
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client = Client()
    client.force_login(admin)
    return client


def test_role_and_superuser_change_in_the_admin_is_audited_with_who(web, personas):
    annotator, admin = personas["annotator"], personas["admin"]
    pathologists = Group.objects.get(name="pathologist")
    before = user_entries(annotator).count()
    response = web.post(f"/admin/auth/user/{annotator.pk}/change/", {
        "username": annotator.username, "is_active": "on", "is_staff": "on", "is_superuser": "on",
        "groups": [pathologists.pk], "user_permissions": [], "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00", "first_name": "", "last_name": "", "email": ""})
    assert response.status_code == 302
    new = list(user_entries(annotator)[before:])
    assert {entry.actor for entry in new} == {admin}
    flags = next(entry.changes_dict for entry in new if "is_superuser" in entry.changes_dict)
    assert flags["is_superuser"] == ["False", "True"] and flags["is_staff"] == ["False", "True"]
    groups = [entry.changes["groups"] for entry in new if "groups" in (entry.changes or {})]
    assert any(change["operation"] == "add" and "pathologist" in change["objects"] for change in groups)


def test_password_change_is_recorded_without_the_hash(personas):
    user = personas["annotator"]
    user.set_password("another-long-password")
    user.save()
    entry = user_entries(user).last()
    assert entry.changes["password"] == ["***", "***"]
    assert user.password not in str(entry.changes)


def test_logins_do_not_fill_the_trail(personas):
    user = personas["annotator"]
    before = user_entries(user).count()
    response = Client().post("/accounts/login/", {"username": "annotator", "password": "pw-for-tests-123"})
    assert response.status_code == 302
    assert user_entries(user).count() == before


def test_group_permission_change_is_audited(personas):
    group = Group.objects.get(name="annotator")
    group.permissions.add(Permission.objects.get(codename="change_patient"))
    entry = LogEntry.objects.get(content_type=ContentType.objects.get_for_model(Group), object_pk=str(group.pk))
    assert entry.changes["permissions"]["operation"] == "add"


def test_token_issue_and_revocation_are_audited_without_the_key(personas):
    user = personas["pathologist"]
    key = do_issue_token(user).key
    do_revoke_tokens(user)
    tokens = [entry for entry in user_entries(user) if "api_token" in (entry.changes or {})]
    assert [entry.changes["api_token"][1].split(",")[0] for entry in tokens] == ["issued", "revoked"]
    assert not LogEntry.objects.filter(object_pk=key).exists()
    assert all(key not in f"{entry.object_repr} {entry.changes}" for entry in LogEntry.objects.all())


def test_token_obtained_through_the_api_names_its_user(personas):
    user = personas["pathologist"]
    user.set_password("right-horse-battery")
    user.save()
    response = APIClient().post("/api/auth/token/", {"username": "pathologist", "password": "right-horse-battery"},
                                format="json")
    assert response.status_code == 200
    assert any("api_token" in (entry.changes or {}) for entry in user_entries(user))


def test_deleted_account_still_named_in_its_entries(personas):
    """auditlog sets the actor to NULL; an account without e-mail would leave no name at all."""
    pathologist = personas["pathologist"]
    client = APIClient()
    client.force_login(pathologist)
    patient = personas["case"].patient
    assert client.patch(f"/api/patients/{patient.pk}/", {"family_name": "Changed"}, format="json").status_code == 200
    entry = LogEntry.objects.filter(action=LogEntry.Action.UPDATE, actor=pathologist,
                                    content_type=ContentType.objects.get_for_model(patient)).get()
    pathologist.delete()
    entry.refresh_from_db()
    assert entry.actor_id is None and entry.actor_email == "pathologist"


def test_deleted_account_with_an_address_keeps_the_address(personas):
    user = personas["pathologist"]
    user.email = "p@example.org"
    user.save()
    client = APIClient()
    client.force_login(user)
    client.patch(f"/api/patients/{personas['case'].patient.pk}/", {"family_name": "Changed"}, format="json")
    user.delete()
    assert set(LogEntry.objects.filter(action=LogEntry.Action.UPDATE, actor=None,
                                       actor_email__isnull=False).values_list("actor_email", flat=True)) \
        == {"p@example.org"}
