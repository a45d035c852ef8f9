"""An order that the database cannot store, or whose keys do not fit, is kept and answered (AE/AR), never
left without an answer for the sender to resend forever; only a database that is down goes unanswered
(review findings, 2026-12-01). SYNTHETIC patients."""

import copy

import pytest
from django.db import DataError, IntegrityError, OperationalError

import integration.orders
from cases.models import Case, Patient
from integration.inbound import handle_hl7
from integration.models import InboundMessage
from tests.factories import DepartmentFactory
from tests.integration import fields, orm
from tests.integration.test_orders_fhir import SERVICE_REQUEST, post, service  # noqa: F401  fixture
from tests.integration.test_orders_hl7 import said


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


@pytest.mark.parametrize("change, location", [
    (dict(family=r"Do\X00\e"), "PID^1^5^1^1"),  # a NUL once unescaped: PostgreSQL refused the insert
    (dict(mrn=r"12\X00\34"), "PID^1^3^1^1"),
    (dict(accession=r"S26\X00\1"), "ORC^1^3^1^1"),
    (dict(given="Ja\x0bne"), "PID^1^5^1^2"),  # a raw control character
])
def test_a_control_character_in_a_value_is_refused_and_kept(department, change, location):
    answer = handle_hl7(orm(**change))
    assert fields(answer, "MSA")[1] == "AE" and "control character" in said(answer), answer
    assert fields(answer, "ERR")[2] == location
    assert Patient.objects.count() == 0 and Case.objects.count() == 0
    kept = InboundMessage.objects.get()
    assert kept.outcome == "AE" and "\x00" not in kept.error
    assert handle_hl7(orm(**change)) == answer and InboundMessage.objects.get().repeats == 1


def test_a_control_character_in_a_service_request_is_refused(service):  # noqa: F811
    body = copy.deepcopy(SERVICE_REQUEST)
    body["contained"][0]["name"][0]["family"] = "Ex\u000bample"
    response = post(service, body)
    assert response.status_code == 422 and "control character" in response.json()["issue"][0]["diagnostics"]
    assert Patient.objects.count() == 0


def failing(*errors):
    """A do_file_order that raises the given errors in turn, then files the order."""
    real, calls = integration.orders.do_file_order, []

    def file(order, **kwargs):
        calls.append(order)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return real(order, **kwargs)
    return file, calls


@pytest.mark.parametrize("error", [DataError("value not storable"), IntegrityError("conflict"),
                                   RuntimeError("a bug")])
def test_a_database_refusal_is_answered_ae_and_kept(department, monkeypatch, error):
    file, calls = failing(error, error)
    monkeypatch.setattr(integration.orders, "do_file_order", file)
    answer = handle_hl7(orm())
    assert fields(answer, "MSA")[1] == "AE" and type(error).__name__ in said(answer)
    assert InboundMessage.objects.get().outcome == "AE" and Case.objects.count() == 0
    assert len(calls) == (2 if isinstance(error, IntegrityError) else 1)  # a conflict is tried once more


def test_a_conflict_the_retry_explains_is_filed(department, monkeypatch):
    file, calls = failing(IntegrityError("a concurrent new patient"))
    monkeypatch.setattr(integration.orders, "do_file_order", file)
    assert fields(handle_hl7(orm()), "MSA")[1] == "AA" and len(calls) == 2
    assert Case.objects.count() == 1 and InboundMessage.objects.count() == 1


def test_a_database_that_is_down_gets_no_answer(department, monkeypatch):
    file, _ = failing(OperationalError("server closed the connection"))
    monkeypatch.setattr(integration.orders, "do_file_order", file)
    with pytest.raises(OperationalError):
        handle_hl7(orm())  # the listener closes the connection: the sender sends it again
    assert InboundMessage.objects.count() == 0


def test_an_over_long_sender_is_refused_and_its_resend_gets_the_same_answer(department):
    message = orm().replace(b"|HIS|HOSP|", b"|" + b"A" * 250 + b"|HOSP|", 1)
    answer = handle_hl7(message)
    assert fields(answer, "MSA")[1] == "AR" and "at most 200" in said(answer)
    assert handle_hl7(message) == answer  # looked up by the key it was stored with: a repeat
    kept = InboundMessage.objects.get()
    assert kept.repeats == 1 and len(kept.sender) == 200 and Case.objects.count() == 0


def test_a_message_that_cannot_be_kept_is_still_answered(department, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(InboundMessage, "save", refuse)
    answer = handle_hl7(orm())  # the conflict twice: not a repeat the retry can explain
    assert fields(answer, "MSA")[1:3] == ["AE", "MSG0001"] and "could not be recorded" in said(answer)
    monkeypatch.undo()
    assert InboundMessage.objects.count() == 0 and Case.objects.count() == 0
