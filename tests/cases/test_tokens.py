"""API tokens expire after API_TOKEN_MAX_AGE and are revoked when their user's password changes."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def obtain(username, password):
    return APIClient().post("/api/auth/token/", {"username": username, "password": password}, format="json")


def get_with(token_key, path="/api/patients/"):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_key}")
    return client.get(path)


@pytest.fixture
def user(personas):
    user = personas["pathologist"]
    user.set_password("right-horse-battery")
    user.save()
    return user


def test_token_works_until_its_maximum_age(user, settings):
    settings.PDL1_API_TOKEN_MAX_AGE = 3600
    response = obtain("pathologist", "right-horse-battery")
    assert response.status_code == 200 and "expires" in response.json()
    key = response.json()["token"]
    assert get_with(key).status_code == 200
    Token.objects.filter(key=key).update(created=Token.objects.get(key=key).created - timedelta(seconds=3599))
    assert get_with(key).status_code == 200
    Token.objects.filter(key=key).update(created=Token.objects.get(key=key).created - timedelta(seconds=2))
    refused = get_with(key)
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]
    assert not Token.objects.filter(key=key).exists()


def test_obtaining_again_replaces_an_expired_token(user, settings):
    settings.PDL1_API_TOKEN_MAX_AGE = 60
    first = obtain("pathologist", "right-horse-battery").json()["token"]
    Token.objects.filter(key=first).update(created=Token.objects.get(key=first).created - timedelta(seconds=61))
    second = obtain("pathologist", "right-horse-battery").json()["token"]
    assert second != first and get_with(second).status_code == 200


def test_password_change_revokes_tokens(user):
    key = obtain("pathologist", "right-horse-battery").json()["token"]
    user.set_password("a-new-long-passphrase")
    user.save()
    assert get_with(key).status_code == 401 and not Token.objects.filter(user=user).exists()


def test_password_change_in_the_admin_revokes_tokens(user, personas):
    from django.test import Client

    from tests.factories import make_user

    key = obtain("pathologist", "right-horse-battery").json()["token"]
    admin = Client()
    admin.force_login(make_user(None, username="root", is_staff=True, is_superuser=True))
    response = admin.post(f"/admin/auth/user/{user.pk}/password/",
                          {"password1": "quite-another-passphrase", "password2": "quite-another-passphrase",
                           "usable_password": "true"})
    assert response.status_code == 302 and response.url == f"/admin/auth/user/{user.pk}/change/"
    assert get_with(key).status_code == 401


def test_login_hash_upgrade_keeps_tokens(user, settings):
    """A password hash rehashed at login is no password change: the token stays."""
    key = obtain("pathologist", "right-horse-battery").json()["token"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.ScryptPasswordHasher",
                                 "django.contrib.auth.hashers.MD5PasswordHasher"]
    user.refresh_from_db()
    assert user.check_password("right-horse-battery")  # rehashes and saves with the new hasher
    user.refresh_from_db()
    assert user.password.startswith("scrypt$")
    assert get_with(key).status_code == 200


@pytest.mark.parametrize("body", ["[1, 2]", '"x"', "123", "null"])
def test_the_token_endpoint_answers_a_body_that_is_not_an_object_with_a_400(body):
    from rest_framework.test import APIClient

    response = APIClient().post("/api/auth/token/", body, content_type="application/json")
    assert response.status_code == 400
