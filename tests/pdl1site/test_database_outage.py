"""While the database is unreachable, requests get 503 with Retry-After and a message, not a bare 500
(found by the soak: bench/RESULTS-soak.md, PostgreSQL restart)."""

from unittest import mock

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError
from django.test import Client

from pdl1site.errors import DATABASE_UNAVAILABLE


def outage(*args, **kwargs):
    raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")


@pytest.fixture
def signed_in_client(personas):
    client = Client(raise_request_exception=False)
    client.force_login(personas["pathologist"])
    return client


@pytest.mark.django_db
def test_a_page_answers_503_with_retry_after_while_the_database_is_down(signed_in_client):
    with mock.patch.object(SessionStore, "load", outage):
        response = signed_in_client.get("/")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response.content.decode() == DATABASE_UNAVAILABLE


@pytest.mark.django_db
def test_the_api_answers_503_json_while_the_database_is_down(signed_in_client):
    with mock.patch.object(SessionStore, "load", outage):
        response = signed_in_client.get("/api/cases/")
    assert response.status_code == 503
    assert response.json() == {"detail": DATABASE_UNAVAILABLE}


@pytest.mark.django_db
def test_any_other_error_stays_a_plain_500_without_details(signed_in_client):
    def defect(*args, **kwargs):
        raise ValueError("secret internals")

    with mock.patch.object(SessionStore, "load", defect):
        response = signed_in_client.get("/api/cases/")
    assert response.status_code == 500
    assert "Retry-After" not in response
    assert b"secret internals" not in response.content
