"""Results out: ORU^R01 over MLLP and the FHIR bundle over REST, from a durable outbox written in the signing
transaction, delivered in order, exactly once, through peer outages and NACKs. Real peers on loopback.
Patients here are SYNTHETIC."""

import base64
import datetime

import hl7
import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory
from django.utils import timezone

from cases.choices import DocumentKind, ReportStatus
from cases.documents import stored_documents
from cases.models import Report
from cases.reports import do_amend, do_create_draft, do_sign
from integration.admin import OutboxMessageAdmin
from integration.delivery import deliver_due
from integration.models import OutboxMessage
from tests.integration import FhirServer, ResultsPeer, fields, free_port
from tests.viewer import job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"


@pytest.fixture
def job(personas, media_root):
    return job_with_result(personas["case"], n=2000, seed=5)


@pytest.fixture
def mllp_port(settings):
    port = free_port()
    settings.PDL1_INTEGRATION_RESULTS_MLLP_PEER = f"127.0.0.1:{port}"
    settings.PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL = ""
    settings.PDL1_INTEGRATION_TIMEOUT_SECONDS = 2
    settings.PDL1_INTEGRATION_RETRY_BASE_SECONDS = 30
    settings.PDL1_INTEGRATION_RETRY_MAX_SECONDS = 900
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return port


@pytest.fixture
def peer(mllp_port):
    server = ResultsPeer(mllp_port)
    yield server
    server.stop()


def sign(personas, job) -> Report:
    report = do_create_draft(personas["case"], job, personas["pathologist"], comment="SYNTHETIC test case")
    return do_sign(report, personas["pathologist"], PASSWORD)


def amend(personas, report) -> Report:
    amendment = do_amend(report, personas["pathologist"], "Counted again after review")
    return do_sign(amendment, personas["pathologist"], PASSWORD)


def parsed(message: bytes):
    return hl7.parse(message.decode("utf-8").strip("\r"))


def later(seconds: float) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=seconds)


def test_signing_writes_the_oru_in_the_signing_transaction(personas, job, mllp_port):
    report = sign(personas, job)
    row = OutboxMessage.objects.get()
    assert (row.report, row.channel, row.state, row.attempts, row.destination) == (
        report, "hl7v2", "pending", 0, f"127.0.0.1:{mllp_port}")
    oru = parsed(bytes(row.payload))
    assert str(oru.segment("MSH")(9)) == "ORU^R01^ORU_R01" and str(oru["MSH.F10"]) == row.message_id
    assert str(oru["PID.F3.R1.C1"]) == personas["case"].patient.mrn and str(oru["PID.F3.R1.C4"]) == "HOSP"
    assert str(oru["OBR.F3"]) == personas["case"].accession and str(oru["OBR.F25"]) == "F"
    obx = {str(seg(3)(1)(1)): seg for seg in oru.segments("OBX")}
    tps = obx["85147-7"]  # PD-L1 by clone 22C3 (the case's clone)
    assert str(tps(2)) == "NM" and float(str(tps(5))) == report.scores["tps"]["value"] and str(tps(11)) == "F"
    assert str(obx["PDL1-TPS-CAT"](5)) == report.scores["tps"]["category"]
    pdf = obx["PDF"]
    assert str(pdf(2)) == "ED" and str(pdf(5)(1)(2)) == "AP" and str(pdf(5)(1)(4)) == "Base64"
    assert base64.b64decode(str(pdf(5)(1)(5))) == stored_documents(report)[DocumentKind.PDF].data
    assert all(str(seg(11)) == "F" for seg in oru.segments("OBX"))


def test_a_failing_outbox_write_stops_the_signing(personas, job, mllp_port, monkeypatch):
    import integration.hl7v2

    monkeypatch.setattr(integration.hl7v2, "oru_r01", lambda *a: 1 / 0)
    report = do_create_draft(personas["case"], job, personas["pathologist"])
    with pytest.raises(ZeroDivisionError):
        do_sign(report, personas["pathologist"], PASSWORD)
    report.refresh_from_db()
    assert report.status == ReportStatus.DRAFT and not stored_documents(report)
    assert OutboxMessage.objects.count() == 0


def test_no_peer_configured_no_outbox(personas, job, settings):
    settings.PDL1_INTEGRATION_RESULTS_MLLP_PEER = settings.PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL = ""
    sign(personas, job)
    assert OutboxMessage.objects.count() == 0


def test_delivered_on_aa_and_sent_once(personas, job, peer):
    report = sign(personas, job)
    assert deliver_due() == {"delivered": 1, "failed": 0, "rejected": 0}
    row = OutboxMessage.objects.get()
    assert row.state == "delivered" and row.attempts == 1 and row.delivered_at and b"MSA|AA|" in bytes(row.answer)
    assert peer.received == [bytes(row.payload)]
    assert deliver_due() == {"delivered": 0, "failed": 0, "rejected": 0}  # nothing twice
    assert len(peer.received) == 1
    assert report.pk == row.report_id


def test_peer_down_for_an_hour_loses_nothing_and_receives_each_message_once(personas, job, mllp_port):
    report = sign(personas, job)
    amendment = amend(personas, Report.objects.get(pk=report.pk))
    # Down: every attempt fails, waiting 30, 60, 120 ... s, at most 900 s, never giving up.
    waits, now = [], timezone.now()
    while now < later(3600):
        deliver_due(now)
        first = OutboxMessage.objects.order_by("pk").first()
        waits.append(round((first.next_attempt_at - now).total_seconds()))
        now = first.next_attempt_at
    assert waits[:6] == [30, 60, 120, 240, 480, 900] and set(waits[6:]) == {900}
    rows = list(OutboxMessage.objects.order_by("pk"))
    assert [r.state for r in rows] == ["pending", "pending"] and rows[1].attempts == 0  # the amendment waits its turn
    assert "no acknowledgement" in rows[0].last_error
    # Back: at its next attempt both go, in signing order, each once.
    peer = ResultsPeer(mllp_port)
    try:
        assert deliver_due(now) == {"delivered": 2, "failed": 0, "rejected": 0}
        assert deliver_due(later(7200)) == {"delivered": 0, "failed": 0, "rejected": 0}
    finally:
        peer.stop()
    assert [fields(m, "MSH")[9] for m in peer.received] == [rows[0].message_id, rows[1].message_id]
    # The amendment is a correction: result status C.
    first, second = (parsed(m) for m in peer.received)
    assert str(first["OBR.F25"]) == "F" and str(second["OBR.F25"]) == "C"
    assert {str(seg(11)) for seg in second.segments("OBX")} == {"C"}
    conclusion = next(seg for seg in second.segments("OBX") if str(seg(2)) == "TX")
    assert "Amended: Counted again after review" in second.unescape(str(conclusion(5)))
    assert amendment.supersedes_id == report.pk


def test_connection_dropped_before_the_ack_is_sent_again_with_the_same_control_id(personas, job, mllp_port):
    sign(personas, job)
    peer = ResultsPeer(mllp_port, answers=["drop"])
    try:
        assert deliver_due()["failed"] == 1
        assert OutboxMessage.objects.get().state == "pending"
        assert deliver_due(later(31))["delivered"] == 1
    finally:
        peer.stop()
    # The peer got it twice with the same MSH-10 and the same bytes: its de-duplication keeps one.
    assert len(peer.received) == 2 and peer.received[0] == peer.received[1]
    assert len(peer.accepted) == 1


def test_nack_ae_is_retried_ar_waits_for_an_administrator(personas, job, mllp_port, rf=RequestFactory()):
    sign(personas, job)
    peer = ResultsPeer(mllp_port, answers=["AE", "AR"])
    try:
        assert deliver_due()["failed"] == 1
        row = OutboxMessage.objects.get()
        assert row.state == "pending" and row.last_error == "AE: Unknown patient"
        assert deliver_due(later(31))["rejected"] == 1
        row.refresh_from_db()
        assert row.state == "rejected" and row.last_error == "AR: Unknown patient"
        assert deliver_due(later(10_000))["delivered"] == 0  # a rejected row is not retried by itself
        # The administrator's "Send again" (admin action) makes it due; then AA.
        request = rf.post("/admin/")
        request.user = personas["admin"]
        request._messages = type("M", (), {"add": lambda *a, **k: None})()
        OutboxMessageAdmin(OutboxMessage, site).send_again(request, OutboxMessage.objects.all())
        assert deliver_due()["delivered"] == 1
    finally:
        peer.stop()
    assert len(peer.received) == 3 and len(peer.accepted) == 1


def test_peer_that_never_answers_times_out(personas, job, mllp_port, settings):
    import socket

    settings.PDL1_INTEGRATION_TIMEOUT_SECONDS = 1
    sign(personas, job)
    silent = socket.create_server(("127.0.0.1", mllp_port))  # accepts (backlog) but never reads or answers
    try:
        assert deliver_due()["failed"] == 1
    finally:
        silent.close()
    assert "TimeoutError" in OutboxMessage.objects.get().last_error


# --- FHIR ------------------------------------------------------------------------------------------

@pytest.fixture
def fhir(settings):
    server = FhirServer(refuse=[503])
    settings.PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL = server.base_url
    settings.PDL1_INTEGRATION_RESULTS_MLLP_PEER = ""
    settings.PDL1_INTEGRATION_TIMEOUT_SECONDS = 5
    settings.PDL1_INTEGRATION_RESULTS_FHIR_AUTHORIZATION = "Bearer SYNTHETIC-token"
    yield server
    server.stop()


def test_fhir_bundle_is_posted_as_stored_validated_and_once(personas, job, fhir):
    report = sign(personas, job)
    row = OutboxMessage.objects.get()
    stored = stored_documents(report)[DocumentKind.FHIR].data
    assert row.channel == "fhir" and bytes(row.payload) == stored
    assert deliver_due()["failed"] == 1  # 503 from a busy server: retried later
    assert "HTTP 503" in OutboxMessage.objects.get().last_error
    assert deliver_due(later(31))["delivered"] == 1
    assert deliver_due(later(3600))["delivered"] == 0
    path, headers, body = fhir.requests[-1]
    assert path == "/fhir/Bundle" and body == stored
    assert headers["Content-Type"] == "application/fhir+json" and headers["Authorization"] == "Bearer SYNTHETIC-token"
    assert headers["Idempotency-Key"] == row.message_id
    assert list(fhir.stored) == [row.message_id]  # the endpoint validated it with fhir.resources
    diagnostic = fhir.stored[row.message_id].entry[0].resource
    assert diagnostic.status == "final" and diagnostic.identifier[0].value == f"{personas['case'].accession}-v1"


def test_an_invalid_stored_bundle_is_never_sent(personas, job, fhir):
    sign(personas, job)
    OutboxMessage.objects.update(payload=b'{"resourceType": "Bundle", "type": "collection", "entry": "none"}')
    assert deliver_due()["rejected"] == 1  # checked with fhir.resources before sending
    assert "not valid FHIR" in OutboxMessage.objects.get().last_error and fhir.requests == []


def test_fhir_server_refusing_the_bundle_waits_for_an_administrator(personas, job, fhir):
    fhir.refuse = [422]
    sign(personas, job)
    assert deliver_due()["rejected"] == 1
    row = OutboxMessage.objects.get()
    assert row.state == "rejected" and row.last_error.startswith("HTTP 422")
    assert deliver_due(later(10_000))["delivered"] == 0 and len(fhir.requests) == 1


def test_admins_see_each_delivery_state(personas, job, peer):
    from rest_framework.test import APIClient

    sign(personas, job)
    admin = APIClient()
    admin.force_authenticate(personas["admin"])
    before = admin.get("/api/integration/outbox/").json()["results"]
    assert [(r["channel"], r["state"], r["attempts"], r["accession"], r["report_version"]) for r in before] == [
        ("hl7v2", "pending", 0, personas["case"].accession, 1)]
    deliver_due()
    after = admin.get("/api/integration/outbox/?state=delivered").json()["results"]
    assert [(r["state"], r["attempts"]) for r in after] == [("delivered", 1)] and after[0]["delivered_at"]


def test_channels_are_independent(personas, job, mllp_port, fhir, settings):
    settings.PDL1_INTEGRATION_RESULTS_MLLP_PEER = f"127.0.0.1:{mllp_port}"  # nobody listens there
    fhir.refuse = []
    sign(personas, job)
    assert deliver_due() == {"delivered": 1, "failed": 1, "rejected": 0}
    states = dict(OutboxMessage.objects.values_list("channel", "state"))
    assert states == {"hl7v2": "pending", "fhir": "delivered"}


@pytest.mark.django_db(transaction=True)
def test_signing_queues_a_delivery_once_committed(peer):
    from tests.conftest import make_personas

    personas = make_personas()  # committed: the signing below runs its on-commit hooks
    report = sign(personas, job_with_result(personas["case"], n=300))
    row = OutboxMessage.objects.get(report=report)  # the tests' django-q2 runs queued tasks at once
    assert row.state == "delivered" and peer.received == [bytes(row.payload)]


@pytest.mark.django_db(transaction=True)
def test_two_delivery_runs_at_once_send_each_message_once(mllp_port, monkeypatch):
    import threading

    from django.db import connection

    from tests.conftest import make_personas

    if connection.vendor == "sqlite":  # the in-memory test database locks whole tables across threads
        pytest.skip("needs a database with row locks: run with DATABASE_URL=postgres://...")
    errors = []

    def run():
        try:
            deliver_due()
        except Exception as exc:  # noqa: BLE001  reported below
            errors.append(exc)
        finally:
            connection.close()

    monkeypatch.setattr("integration.outbox.kick_delivery", lambda: None)  # only the two runs below deliver
    personas = make_personas()
    sign(personas, job_with_result(personas["case"], n=300))
    peer = ResultsPeer(mllp_port, delay=0.5)
    try:
        runs = [threading.Thread(target=run) for _ in range(2)]
        for run in runs:
            run.start()
        for run in runs:
            run.join(30)
    finally:
        peer.stop()
    assert errors == [] and len(peer.received) == 1
    row = OutboxMessage.objects.get()
    assert row.state == "delivered" and row.attempts == 1
