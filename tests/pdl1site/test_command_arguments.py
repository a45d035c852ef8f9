"""`manage.py deliver_outbox --loop SECONDS` refuses a wait it cannot keep before it sends anything: a
negative, nan or infinite --loop used to send the due messages, then crash in time.sleep."""

import io

import pytest
from django.core.management import CommandError, call_command

from cases.reports import do_create_draft, do_sign
from integration.models import OutboxMessage
from tests.integration import ResultsPeer, free_port
from tests.viewer import job_with_result

pytestmark = pytest.mark.django_db


@pytest.fixture
def due_row(personas, media_root, settings):
    """A signed report's ORU^R01, due now, and the peer that would receive it."""
    port = free_port()
    settings.PDL1_INTEGRATION_RESULTS_MLLP_PEER = f"127.0.0.1:{port}"
    case = personas["case"]
    do_sign(do_create_draft(case, job_with_result(case, n=50), personas["pathologist"]), personas["pathologist"],
            "pw-for-tests-123")
    peer = ResultsPeer(port)
    yield OutboxMessage.objects.get(), peer
    peer.stop()


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf", "soon"])
def test_a_bad_loop_is_refused_before_anything_is_sent(due_row, value):
    row, peer = due_row
    with pytest.raises(CommandError, match="--loop"):
        call_command("deliver_outbox", "--loop", value, stdout=io.StringIO())
    row.refresh_from_db()
    assert (row.state, row.attempts, peer.received) == ("pending", 0, [])


def test_a_bad_loop_given_as_a_keyword_is_refused_too(due_row):
    row, peer = due_row
    with pytest.raises(CommandError, match="--loop"):
        call_command("deliver_outbox", loop=-1, stdout=io.StringIO())
    row.refresh_from_db()
    assert (row.state, row.attempts, peer.received) == ("pending", 0, [])


def test_loop_zero_is_one_run(due_row):
    row, peer = due_row
    out = io.StringIO()
    call_command("deliver_outbox", "--loop", "0", stdout=out)
    assert out.getvalue().strip() == "delivered 1, failed 0, rejected 0"
    row.refresh_from_db()
    assert row.state == "delivered" and len(peer.received) == 1
