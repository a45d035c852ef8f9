"""The address in the audit trail is the connection's, or behind a proxy that says so (PDL1_TRUST_FORWARDED_FOR)
the X-Forwarded-For entry that proxy appended: never one the client wrote, and never a value that is no
address (on PostgreSQL, an inet column: every audited request failed)."""

import pytest
from auditlog.models import LogEntry
from django.db import connection
from django.test import RequestFactory
from rest_framework.test import APIClient

from pdl1site.middleware import client_address, valid_address

pytestmark = pytest.mark.django_db


def edit_patient(personas, **headers):
    client = APIClient(raise_request_exception=False)
    client.force_login(personas["pathologist"])
    patient = personas["case"].patient
    response = client.patch(f"/api/patients/{patient.pk}/", {"family_name": "Edited"}, format="json", **headers)
    entry = LogEntry.objects.filter(action=LogEntry.Action.UPDATE, actor=personas["pathologist"]).latest("pk")
    return response, entry


def test_a_forwarded_for_sent_by_the_client_is_not_recorded(personas):
    response, entry = edit_patient(personas, REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.66",
                                   HTTP_X_FORWARDED_PORT="4444")
    assert response.status_code == 200
    assert entry.remote_addr == "10.1.2.3" and entry.remote_port is None


def test_behind_the_proxy_the_entry_it_appended_is_recorded(personas, settings):
    settings.PDL1_TRUST_FORWARDED_FOR = True
    # The client sent "203.0.113.66"; the proxy appended the address it saw.
    response, entry = edit_patient(personas, REMOTE_ADDR="10.0.0.1",
                                   HTTP_X_FORWARDED_FOR="203.0.113.66, 198.51.100.7", HTTP_X_FORWARDED_PORT="443")
    assert response.status_code == 200
    assert entry.remote_addr == "198.51.100.7" and entry.remote_port == 443


@pytest.mark.parametrize("trust", [False, True])
def test_a_value_that_is_no_address_is_stored_as_none(personas, settings, trust):
    settings.PDL1_TRUST_FORWARDED_FOR = trust
    response, entry = edit_patient(personas, REMOTE_ADDR="not-an-ip" if not trust else "10.0.0.1",
                                   HTTP_X_FORWARDED_FOR="x", HTTP_X_FORWARDED_PORT="99999999999")
    assert response.status_code == 200
    assert entry.remote_addr is None and entry.remote_port is None


@pytest.mark.parametrize("forwarded, expected", [
    ("198.51.100.7", "198.51.100.7"),
    ("1.2.3.4, 198.51.100.7:5123", "198.51.100.7"),
    ("1.2.3.4,[2001:db8::1]:443", "2001:db8::1"),
    ("2001:DB8::1", "2001:db8::1"),
    ("fe80::1%eth0", "fe80::1"),
    ("198.51.100.7, unknown", None),
    ("198.51.100.7,", None),
])
def test_the_last_forwarded_entry_is_validated(settings, forwarded, expected):
    settings.PDL1_TRUST_FORWARDED_FOR = True
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


def test_without_a_forwarded_header_the_connection_address_is_used(settings):
    settings.PDL1_TRUST_FORWARDED_FOR = True
    assert client_address(RequestFactory().get("/", REMOTE_ADDR="10.0.0.1")) == "10.0.0.1"
    assert valid_address(None) is None and valid_address("") is None


@pytest.mark.django_db(transaction=True)
def test_a_bad_forwarded_for_does_not_fail_the_request_on_postgresql(personas):
    if connection.vendor != "postgresql":
        pytest.skip("the inet column that refused the value is PostgreSQL's")
    response, entry = edit_patient(personas, HTTP_X_FORWARDED_FOR="x", HTTP_X_FORWARDED_PORT="99999999999")
    assert response.status_code == 200 and entry.remote_addr == "127.0.0.1" and entry.remote_port is None
