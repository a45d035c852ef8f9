"""An attempt whose lease ran out while it waited for the peer, and whose row another run claimed again, may
still get its answer. Before, _record wrote whatever came last: a late HTTP 409 / AR turned a delivered row
"rejected" (delivered_at still set), "Send again" then sent a delivered result again and the row no longer
counted as a delivered version. Now the lease end set at the claim is the attempt's token: only the current
attempt's answer decides, a late success is still recorded (the peer has it), and a delivered row never
changes.

The token was then the lease end itself, compared for exact equality: a database or serializer that keeps
timestamps less precisely than they were written made the current attempt's own answer look late, and it
was dropped. Now each claim raises a counter on the row, compared in the UPDATE that records the answer."""

import datetime

import pytest
from django.utils import timezone

from integration.choices import OutboxState
from integration.delivery import Attempt, _claim_next, _record, retry
from integration.models import OutboxMessage
from tests.factories import ReportFactory

pytestmark = pytest.mark.django_db

DELIVERED = Attempt(True, answer=b'{"resourceType": "Bundle"}')
DUPLICATE = Attempt(False, rejected=True, error="HTTP 409: duplicate Idempotency-Key", answer=b"409")
TIMEOUT = Attempt(False, error="no answer from http://ehr: TimeoutError")


@pytest.fixture
def two_claims(settings):
    """(row, attempt A's claim, attempt B's claim): B claimed the row after A's lease ran out."""
    settings.PDL1_INTEGRATION_TIMEOUT_SECONDS = 1
    row = OutboxMessage.objects.create(report=ReportFactory(), channel="fhir", message_id="PDL1R1F",
                                       destination="http://ehr", payload=b"{}")
    t0 = timezone.now()
    a = _claim_next("fhir", t0)
    b = _claim_next("fhir", t0 + datetime.timedelta(seconds=60))
    assert a.pk == b.pk == row.pk and a.leased_until < b.leased_until and a.claim_token < b.claim_token
    return row, a, b


def state(row):
    row.refresh_from_db()
    return row.state, row.attempts, row.last_error


def test_a_late_rejection_never_undoes_a_delivery(two_claims):
    row, a, b = two_claims
    _record(b, DELIVERED)
    _record(a, DUPLICATE)  # A's answer arrives last
    assert state(row) == (OutboxState.DELIVERED, 2, "")
    assert row.delivered_at is not None and bytes(row.answer) == DELIVERED.answer and row.leased_until is None
    assert retry(OutboxMessage.objects.all()) == 0  # "Send again" leaves a delivered row alone
    assert OutboxMessage.objects.filter(state=OutboxState.DELIVERED).get() == row


def test_a_late_success_is_recorded_even_after_the_current_attempt_was_refused(two_claims):
    row, a, b = two_claims
    _record(b, DUPLICATE)  # the peer had it already: A's POST got through
    assert state(row) == (OutboxState.REJECTED, 1, DUPLICATE.error)
    _record(a, DELIVERED)
    assert state(row) == (OutboxState.DELIVERED, 2, "") and row.delivered_at is not None


def test_a_late_success_first_then_the_current_attempts_failure(two_claims):
    row, a, b = two_claims
    _record(a, DELIVERED)
    assert state(row) == (OutboxState.DELIVERED, 1, "")
    _record(b, DUPLICATE)
    assert state(row) == (OutboxState.DELIVERED, 2, "") and row.leased_until is None


def test_a_late_failure_leaves_the_current_attempt_in_charge(two_claims):
    row, a, b = two_claims
    _record(a, TIMEOUT)  # B is still sending: its lease holds, nothing is rescheduled
    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_error, row.leased_until) == (OutboxState.PENDING, 1, "", b.leased_until)
    _record(a, DUPLICATE)
    assert state(row) == (OutboxState.PENDING, 2, "")
    _record(b, TIMEOUT)  # B's own answer decides
    assert state(row) == (OutboxState.PENDING, 3, TIMEOUT.error) and row.leased_until is None


def test_a_late_failure_after_the_current_attempt_failed_changes_nothing(two_claims):
    row, a, b = two_claims
    _record(b, TIMEOUT)
    row.refresh_from_db()
    due = row.next_attempt_at
    _record(a, DUPLICATE)
    assert state(row) == (OutboxState.PENDING, 2, TIMEOUT.error) and row.next_attempt_at == due


def test_an_expired_attempt_nobody_took_over_is_still_the_current_one(settings):
    settings.PDL1_INTEGRATION_TIMEOUT_SECONDS = 1
    row = OutboxMessage.objects.create(report=ReportFactory(), channel="fhir", message_id="PDL1R1F",
                                       destination="http://ehr", payload=b"{}",
                                       next_attempt_at=timezone.now() - datetime.timedelta(seconds=120))
    a = _claim_next("fhir", timezone.now() - datetime.timedelta(seconds=60))  # its lease is long over
    _record(a, DUPLICATE)
    assert state(row) == (OutboxState.REJECTED, 1, DUPLICATE.error) and row.leased_until is None


def test_a_delivery_run_that_outlived_its_lease(settings, monkeypatch):
    """Run A's send outlasts its lease; run B claims the row and delivers it; then A's peer answers 409."""
    import integration.delivery as delivery

    settings.PDL1_INTEGRATION_TIMEOUT_SECONDS = 1
    row = OutboxMessage.objects.create(report=ReportFactory(), channel="fhir", message_id="PDL1R1F",
                                       destination="http://ehr", payload=b"{}")
    later = timezone.now() + datetime.timedelta(seconds=60)
    answers = []

    def send(claimed):
        if not answers:  # run A, still waiting for its peer when run B starts
            answers.append("A")
            assert delivery.deliver_due(later) == {"delivered": 1, "failed": 0, "rejected": 0}
            return DUPLICATE
        answers.append("B")
        return DELIVERED

    monkeypatch.setattr(delivery, "send", send)
    assert delivery.deliver_due()["rejected"] == 1  # what A was told; the row says what happened
    assert answers == ["A", "B"] and state(row) == (OutboxState.DELIVERED, 2, "")
    assert delivery.deliver_due(later + datetime.timedelta(hours=1)) == {"delivered": 0, "failed": 0, "rejected": 0}


@pytest.fixture
def whole_seconds(monkeypatch):
    """The database keeps timestamps to the second (as MySQL's DATETIME does), whatever the backend."""
    from django.db import connection

    adapt = connection.ops.adapt_datetimefield_value

    def to_the_second(value):
        return adapt(value.replace(microsecond=0) if isinstance(value, datetime.datetime) else value)

    monkeypatch.setattr(connection.ops, "adapt_datetimefield_value", to_the_second)


@pytest.mark.parametrize("answer", [DUPLICATE, TIMEOUT, DELIVERED])
def test_the_current_attempts_answer_is_recorded_when_timestamps_lose_precision(settings, whole_seconds, answer):
    settings.PDL1_INTEGRATION_TIMEOUT_SECONDS = 1
    row = OutboxMessage.objects.create(report=ReportFactory(), channel="fhir", message_id="PDL1R1F",
                                       destination="http://ehr", payload=b"{}")
    a = _claim_next("fhir", timezone.now().replace(microsecond=250_000))
    row.refresh_from_db()
    assert row.leased_until != a.leased_until  # what the claim set is not what the database kept
    _record(a, answer)
    expected = (OutboxState.DELIVERED if answer.delivered else OutboxState.REJECTED if answer.rejected
                else OutboxState.PENDING)
    assert state(row) == (expected, 1, answer.error) and row.leased_until is None
