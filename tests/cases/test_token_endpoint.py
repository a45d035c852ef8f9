"""POST /api/auth/token/: bad input is a 4xx like everywhere else in the API, and requests at once for
one user's token all get it."""

import threading

import pytest
from django.db import IntegrityError, connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import parsers
from rest_framework.authtoken.models import Token

from cases.auth import do_issue_token

pytestmark = pytest.mark.django_db


def post_token(body: str):
    return Client(raise_request_exception=False).post("/api/auth/token/", data=body, content_type="application/json")


def test_deeply_nested_json_is_a_400():
    response = post_token("[" * 100_000 + "]" * 100_000)
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


def api_views(patterns=None):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from api_views(entry.url_patterns)
        elif isinstance(entry, URLPattern) and hasattr(entry.callback, "cls"):
            yield entry.callback.cls


def test_no_api_view_parses_json_with_the_unbounded_stock_parser():
    views = list(api_views())
    assert any(view.__name__ == "ObtainExpiringAuthToken" for view in views)
    stock = [view.__name__ for view in views if parsers.JSONParser in view.parser_classes]
    assert stock == []


def test_an_expired_token_is_replaced_and_a_current_one_kept(personas, settings):
    settings.PDL1_API_TOKEN_MAX_AGE = 3600
    user = personas["pathologist"]
    first = do_issue_token(user)
    assert do_issue_token(user).key == first.key
    Token.objects.filter(user=user).update(created=first.created.replace(year=first.created.year - 1))
    second = do_issue_token(user)
    assert second.key != first.key and list(Token.objects.filter(user=user)) == [second]


def test_losing_the_race_to_create_the_token_is_not_an_error(personas, monkeypatch):
    """Another request's token was inserted between this one's check and its INSERT (the database
    answers IntegrityError: a user holds one token); the next try returns a token."""
    real_create, raced = Token.objects.create, []

    def create(**kwargs):
        if not raced:
            raced.append(True)
            raise IntegrityError('duplicate key value violates unique constraint "authtoken_token_user_id_key"')
        return real_create(**kwargs)

    monkeypatch.setattr(Token.objects, "create", create)
    token = do_issue_token(personas["pathologist"])
    assert raced and list(Token.objects.filter(user=personas["pathologist"])) == [token]


def issue_at_once(user, requests: int = 3) -> tuple[list[str], list[str]]:
    """do_issue_token from `requests` threads released together: the keys they got, and their errors."""
    barrier, keys, errors = threading.Barrier(requests), [], []

    def issue():
        try:
            barrier.wait()
            keys.append(do_issue_token(user).key)
        except Exception as exc:  # noqa: BLE001  (what the request would have answered 500 with)
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=issue) for _ in range(requests)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    return keys, errors


def needs_server_database():
    if connection.vendor != "postgresql":
        pytest.skip("needs a server database with real concurrent connections")


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_for_one_users_token_all_get_it(personas):
    needs_server_database()
    user = personas["pathologist"]
    for _ in range(20):
        Token.objects.filter(user=user).delete()
        keys, errors = issue_at_once(user)
        assert errors == [] and len(set(keys)) == 1 and Token.objects.get(user=user).key == keys[0]


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_replace_an_expired_token_once(personas, settings):
    needs_server_database()
    settings.PDL1_API_TOKEN_MAX_AGE = 3600
    user = personas["pathologist"]
    for _ in range(10):
        Token.objects.filter(user=user).delete()
        old = Token.objects.create(user=user)
        Token.objects.filter(pk=old.pk).update(created=old.created.replace(year=old.created.year - 1))
        keys, errors = issue_at_once(user)
        assert errors == [] and len(set(keys)) == 1 and keys[0] != old.key
