"""Messages shaped as no reader expected are kept and answered, never lost; a superseded result is never
sent again after its correction (review findings, 2026-12-01)."""

import json

import pytest
from django.contrib.auth.models import User

from integration.choices import InboundOutcome
from integration.delivery import deliver_due, retry
from integration.inbound import handle_fhir_service_request, handle_hl7
from integration.models import InboundMessage, OutboxMessage
from tests.factories import DepartmentFactory
from tests.integration import ResultsPeer, fields
from tests.integration.test_results_out import amend, job, later, mllp_port, sign  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def department(settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"  # required with orders (integration.E003)
    return DepartmentFactory(code="pathology")


def test_an_order_with_a_short_pid_is_kept_and_answered(department):
    raw = b"MSH|^~\\&|LAB|HOSP|PDL1|PATH|20260101||ORM^O01|TRUNC1|P|2.5.1\rPID|1\rORC|NW|P1|F1\rOBR|1|P1|F1|85147-7\r"
    answer = handle_hl7(raw)
    kept = InboundMessage.objects.get(control_id="TRUNC1")
    assert kept.outcome == InboundOutcome.ERROR and "could not be read" in kept.error
    assert b"MSA|AE|TRUNC1" in answer and kept.case is None
    assert handle_hl7(raw) == answer and InboundMessage.objects.count() == 1  # the resend: same answer, kept once


def test_a_service_request_without_a_code_is_kept_and_answered(department):
    body = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "contained": [{"resourceType": "Patient", "id": "p", "identifier": [{"system": "urn:pdl1:mrn",
                                                                                  "value": "F-1"}],
                           "name": [{"family": "Synthetic"}], "birthDate": "1958-03-02"}],
            "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                 "code": "ACSN"}]}, "value": "S26-F9"}],
            "subject": {"reference": "#p"}}
    status, outcome = handle_fhir_service_request(json.dumps(body).encode(), User.objects.create(username="svc"))
    kept = InboundMessage.objects.get()
    assert kept.outcome != InboundOutcome.ACCEPTED and kept.error
    assert 400 <= status < 500 and json.loads(outcome)["resourceType"] == "OperationOutcome"


def test_a_superseded_result_is_not_sent_again_after_its_correction(personas, job, mllp_port):  # noqa: F811
    original = sign(personas, job)
    peer = ResultsPeer(mllp_port, answers=["AR"])
    try:
        assert deliver_due()["rejected"] == 1  # the original refused (an unknown patient, say)
        amend(personas, original)
        assert deliver_due(later(1))["delivered"] == 1  # the correction goes out
        assert retry(OutboxMessage.objects.filter(report=original)) == 0  # "Send again" on the original
        assert deliver_due(later(2))["delivered"] == 0
    finally:
        peer.stop()
    assert [fields(m, "OBR")[25] for m in peer.received] == ["F", "C"]


def test_viewing_a_kept_message_in_the_admin_is_audited(department):
    from auditlog.models import LogEntry
    from django.test import Client

    from tests.factories import make_user

    handle_hl7(b"MSH|^~\\&|LAB|HOSP|PDL1|PATH|20260101||ORM^O01|SEEN1|P|2.5.1\rPID|1\r")
    kept = InboundMessage.objects.get(control_id="SEEN1")
    client = Client()
    root = make_user(None, username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    assert client.get(f"/admin/integration/inboundmessage/{kept.pk}/change/").status_code == 200
    assert LogEntry.objects.get_for_object(kept).filter(action=LogEntry.Action.ACCESS,
                                                       actor=root).count() == 1


def test_send_again_leaves_a_row_being_sent_alone(personas, job, mllp_port):  # noqa: F811
    """A row claimed by a delivery run (its lease holds) is not made due again by "Send again": a second run
    would send it beside the first, and a correction signed meanwhile could arrive between the copies."""
    from django.utils import timezone

    from integration.delivery import _claim_next

    original = sign(personas, job)
    row = OutboxMessage.objects.get(report=original, channel="hl7v2")
    assert _claim_next("hl7v2") == row  # run A is sending it
    assert retry(OutboxMessage.objects.filter(pk=row.pk)) == 0
    row.refresh_from_db()
    assert row.leased_until > timezone.now()
    assert _claim_next("hl7v2") is None  # run B finds nothing to send


def test_a_superseded_row_is_never_sent_after_its_correction_was_delivered(personas, job, mllp_port):  # noqa: F811
    """A delivery that outlived its lease let another run deliver the correction first: the original is kept,
    marked, and not sent after it."""
    from integration.choices import OutboxState

    original = sign(personas, job)
    amend(personas, original)
    first = OutboxMessage.objects.get(report=original, channel="hl7v2")
    correction = OutboxMessage.objects.exclude(pk=first.pk).get(channel="hl7v2")
    correction.state = OutboxState.DELIVERED  # as the other run left it
    correction.save()
    peer = ResultsPeer(mllp_port, answers=["AA"])
    try:
        deliver_due(later(1))
    finally:
        peer.stop()
    first.refresh_from_db()
    assert peer.received == [] and first.state == OutboxState.REJECTED and "later version" in first.last_error
