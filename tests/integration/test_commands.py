"""The delivery command and schedule, and the migration's group and permissions."""

import io

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django_q.models import Schedule

from cases.reports import do_create_draft, do_sign
from integration.models import OutboxMessage
from tests.integration import ResultsPeer, free_port
from tests.viewer import job_with_result

pytestmark = pytest.mark.django_db


def test_deliver_outbox_command_sends_due_rows(personas, media_root, settings):
    port = free_port()
    settings.PDL1_INTEGRATION_RESULTS_MLLP_PEER = f"127.0.0.1:{port}"
    case = personas["case"]
    do_sign(do_create_draft(case, job_with_result(case, n=300), personas["pathologist"]), personas["pathologist"],
            "pw-for-tests-123")
    peer = ResultsPeer(port)
    try:
        out = io.StringIO()
        call_command("deliver_outbox", stdout=out)
    finally:
        peer.stop()
    assert out.getvalue().strip() == "delivered 1, failed 0, rejected 0"
    assert OutboxMessage.objects.get().state == "delivered" and len(peer.received) == 1


def test_migrations_make_the_schedule_and_the_service_group():
    schedule = Schedule.objects.get(name="integration-deliver-outbox")
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "integration.delivery.deliver_due", Schedule.MINUTES, 1, -1)
    assert list(Group.objects.get(name="integration").permissions.values_list("codename", flat=True)) == [
        "submit_orders"]
    admin_codenames = set(Group.objects.get(name="admin").permissions.filter(
        content_type__app_label="integration").values_list("codename", flat=True))
    assert admin_codenames == {"view_inboundmessage", "view_outboxmessage", "change_outboxmessage"}


@pytest.mark.parametrize("name, value, error", [
    ("PDL1_INTEGRATION_RESULTS_MLLP_PEER", "his-engine", "integration.E001"),
    ("PDL1_INTEGRATION_RESULTS_MLLP_PEER", "his-engine:99999", "integration.E001"),
    ("PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL", "fhir.hospital.example/r4", "integration.E002"),
])
def test_a_mistyped_peer_fails_the_system_check(settings, name, value, error):
    from integration.checks import check_peers

    setattr(settings, name, value)
    assert [e.id for e in check_peers(None)] == [error]


def test_configured_peers_pass_the_system_check(settings):
    from integration.checks import check_peers

    settings.PDL1_INTEGRATION_RESULTS_MLLP_PEER = "127.0.0.1:6661"
    settings.PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL = "https://fhir.hospital.example/r4"
    assert check_peers(None) == []
