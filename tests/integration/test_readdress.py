"""An outbox row keeps the address it was queued with. Before, a row queued to a URL that now redirects was
rejected and could only be sent again once that URL accepted the POST itself. Now "Re-address to the
current endpoint and send again" (admin action, manage.py readdress_outbox) points the selected rows that
are not delivered at the endpoint configured now and makes them due: the payload is never changed, a
delivered row never touched, and the audit trail names who did it and keeps the old address."""

import datetime
import io

import pytest
from auditlog.models import LogEntry
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from cases.choices import ReportStatus
from integration.choices import OutboxState
from integration.delivery import Attempt, _claim_next, _record, deliver_due, readdress
from integration.models import OutboxMessage
from tests.factories import ReportFactory, make_user
from tests.integration import FhirServer
from tests.integration.test_fhir_redirects import Recorder

pytestmark = pytest.mark.django_db

BUNDLE = b'{"resourceType": "Bundle", "type": "collection"}'


@pytest.fixture
def moved(settings):
    """(the old address, which now answers 301, the FHIR server at the corrected address, now configured)."""
    settings.PDL1_INTEGRATION_TIMEOUT_SECONDS = 5
    settings.PDL1_INTEGRATION_RESULTS_MLLP_PEER = ""
    server = FhirServer()
    old = Recorder(301, server.base_url + "/Bundle")
    settings.PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL = server.base_url
    yield old.url, server
    old.stop()
    server.stop()


def row(n, destination, **fields):
    return OutboxMessage.objects.create(report=fields.pop("report", None) or ReportFactory(), channel="fhir",
                                        message_id=f"PDL1R{n}F", destination=destination, payload=BUNDLE, **fields)


def root():
    return make_user(None, username="root", is_staff=True, is_superuser=True)


def history(message):
    return LogEntry.objects.get_for_object(message).filter(action=LogEntry.Action.UPDATE)


def test_the_admin_action_readdresses_a_redirected_row_and_it_is_delivered(moved):
    old, server = moved
    redirected = row(1, old)
    assert deliver_due()["rejected"] == 1  # the 301 of the old address
    delivered = row(2, server.base_url, state=OutboxState.DELIVERED, delivered_at=timezone.now())
    web = Client()
    web.force_login(user := root())
    answer = web.post("/admin/integration/outboxmessage/", {
        "action": "readdress_and_send_again", "_selected_action": [redirected.pk, delivered.pk]}, follow=True)
    assert "1 message(s) will be sent at the next delivery run, 1 of them re-addressed" in answer.content.decode()

    redirected.refresh_from_db()
    assert (redirected.destination, redirected.state, bytes(redirected.payload)) == (
        server.base_url, OutboxState.PENDING, BUNDLE)
    entry = history(redirected).latest("timestamp")
    assert entry.actor == user and entry.changes_dict["destination"] == [old, server.base_url]
    before = delivered.destination, delivered.state, delivered.delivered_at
    delivered.refresh_from_db()
    assert (delivered.destination, delivered.state, delivered.delivered_at) == before
    assert not history(delivered).exists()

    assert deliver_due() == {"delivered": 1, "failed": 0, "rejected": 0}
    redirected.refresh_from_db()
    assert redirected.state == OutboxState.DELIVERED and redirected.destination == server.base_url
    assert [(path, body) for path, _, body in server.requests] == [("/fhir/Bundle", BUNDLE)]


def test_rows_that_must_not_be_sent_again_keep_their_address(moved, settings):
    old, server = moved
    now = timezone.now()
    superseded = row(1, old, state=OutboxState.REJECTED, report=ReportFactory(status=ReportStatus.AMENDED))
    being_sent = row(2, old, leased_until=now + datetime.timedelta(minutes=1))
    delivered = row(3, old, state=OutboxState.DELIVERED, delivered_at=now)
    hl7 = OutboxMessage.objects.create(report=ReportFactory(), channel="hl7v2", message_id="PDL1R4H",
                                       destination="127.0.0.1:2575", payload=b"MSH|", state=OutboxState.REJECTED)
    assert readdress(OutboxMessage.objects.all()) == []  # no MLLP peer configured now: the ORU keeps its own
    assert set(OutboxMessage.objects.values_list("destination", flat=True)) == {old, "127.0.0.1:2575"}
    assert [r.state for r in (superseded, being_sent, delivered, hl7)] == [
        OutboxMessage.objects.get(pk=r.pk).state for r in (superseded, being_sent, delivered, hl7)]


def test_a_late_failure_from_the_old_address_does_not_undo_the_readdress(moved):
    """An attempt to the old address outlived its lease unanswered; re-addressed meanwhile, its late 409
    must not reject the row again (a late success still counts: that peer has the result)."""
    old, server = moved
    redirected = row(1, old, next_attempt_at=timezone.now() - datetime.timedelta(minutes=10))
    stale = _claim_next("fhir", timezone.now() - datetime.timedelta(minutes=5))
    [(readdressed, was)] = readdress(OutboxMessage.objects.all())
    assert was == old and readdressed.destination == server.base_url
    _record(stale, Attempt(False, rejected=True, error="HTTP 409: duplicate", answer=b"409"))
    redirected.refresh_from_db()
    assert (redirected.state, redirected.destination, redirected.last_error) == (OutboxState.PENDING,
                                                                                 server.base_url, "")
    assert deliver_due()["delivered"] == 1


def test_the_command_readdresses_the_named_rows_as_the_named_user(moved):
    old, server = moved
    rejected, other = row(1, old, state=OutboxState.REJECTED), row(2, old, state=OutboxState.REJECTED)
    user = root()
    with pytest.raises(CommandError, match="no outbox message PDL1R9F"):
        call_command("readdress_outbox", "PDL1R1F", "PDL1R9F", user="root", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("readdress_outbox", "PDL1R1F", user="nobody", stdout=io.StringIO())
    assert set(OutboxMessage.objects.values_list("destination", flat=True)) == {old}  # nothing changed

    out = io.StringIO()
    call_command("readdress_outbox", "PDL1R1F", user="root", stdout=out)
    assert out.getvalue() == f"PDL1R1F: {old} -> {server.base_url}, due now\n"
    rejected.refresh_from_db(), other.refresh_from_db()
    assert (rejected.destination, rejected.state) == (server.base_url, OutboxState.PENDING)
    assert (other.destination, other.state) == (old, OutboxState.REJECTED)
    entry = history(rejected).latest("timestamp")
    assert entry.actor == user and entry.changes_dict["destination"] == [old, server.base_url]
