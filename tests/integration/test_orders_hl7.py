"""HL7 v2 orders in (ORM^O01, OML^O21): patient and case filed, ACK/NACK, idempotency, one transaction, kept
and audited; over a real MLLP listener on loopback. Patients here are SYNTHETIC."""

import datetime
import socket
import time

import hl7
import pytest
from auditlog.models import LogEntry

from cases.models import Case, Patient
from integration.inbound import handle_hl7
from integration.models import InboundMessage
from tests.factories import DepartmentFactory
from tests.integration import Listener, fields, frame, free_port, oml, orm, read_block, send_order


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


def msa(answer: bytes) -> list[str]:
    return fields(answer, "MSA")


def err(answer: bytes) -> list[str]:
    return fields(answer, "ERR")


def said(answer: bytes) -> str:
    """MSA-3 and ERR-8, unescaped (python-hl7), as the sender's engine shows them."""
    message = hl7.parse(answer.decode("utf-8").strip("\r"))
    return str(message["MSA.F3"]) + " | " + str(message["ERR.F8"])


def test_orm_creates_patient_and_case_and_is_acknowledged(department):
    answer = handle_hl7(orm())
    assert msa(answer)[1:3] == ["AA", "MSG0001"]
    assert fields(answer, "MSH")[8] == "ACK^O01^ACK" and fields(answer, "MSH")[4:6] == ["HIS", "HOSP"]
    patient = Patient.objects.get(mrn="123456")
    assert (patient.family_name, patient.given_name, patient.birth_date, patient.sex, patient.department) == (
        "Doe", "Jane", datetime.date(1960, 5, 17), "female", department)
    case = Case.objects.get(accession="S26-00042")  # the filler order number (ORC-3/OBR-3)
    assert (case.patient, case.assay_clone, case.indication, case.specimen) == (
        patient, "22C3", "lung_squamous", "Lung, right upper lobe core biopsy")
    kept = InboundMessage.objects.get()
    assert bytes(kept.raw) == orm() and bytes(kept.answer) == answer and kept.outcome == "AA"
    assert (kept.case, kept.patient, kept.message_type, kept.sender) == (case, patient, "ORM^O01", "HIS^HOSP")
    # Audited: the message, the patient and the case have their creation entries.
    for obj in (kept, patient, case):
        assert LogEntry.objects.get_for_object(obj).filter(action=LogEntry.Action.CREATE).count() == 1


def test_oml_with_specimen_segment(department):
    answer = handle_hl7(oml())
    assert msa(answer)[1] == "AA"
    case = Case.objects.get(accession="S26-00077")
    assert (case.assay_clone, case.indication, case.specimen) == (
        "SP263", "lung_nonsquamous", "Tissue core biopsy, Left upper lobe of lung")
    assert case.patient.sex == "male"


def test_same_message_again_changes_nothing_and_gets_the_same_answer(department):
    first = handle_hl7(orm())
    Case.objects.filter(accession="S26-00042").update(specimen="edited by the lab")
    again = handle_hl7(orm())
    assert again == first
    assert Case.objects.get(accession="S26-00042").specimen == "edited by the lab"  # not processed again
    kept = InboundMessage.objects.get()
    assert kept.repeats == 1


def test_reused_control_id_with_other_content_is_refused_and_kept(department):
    handle_hl7(orm())
    answer = handle_hl7(orm(accession="S26-99999"))
    assert msa(answer)[1] == "AR" and "already used" in said(answer)
    assert err(answer)[2] == "MSH^1^10"
    assert not Case.objects.filter(accession="S26-99999").exists()
    assert InboundMessage.objects.count() == 2


def test_an_update_changes_the_case(department):
    handle_hl7(orm())
    answer = handle_hl7(orm("MSG0002", clone="PDL1^PD-L1 SP142^L", message_type="ORM^O01", control="XO"))
    assert msa(answer)[1] == "AA"
    assert Case.objects.get(accession="S26-00042").assay_clone == "SP142"
    assert Case.objects.count() == 1 and Patient.objects.count() == 1


@pytest.mark.parametrize("message, code, location, words", [
    (orm(mrn="", authority="HOSP"), "AE", "PID^1^3", "no patient identifier with assigning authority HOSP"),
    (orm(authority="ELSEWHERE"), "AE", "PID^1^3", "assigning authority HOSP"),
    (orm(birth="1960-13-45"), "AE", "PID^1^7", "not a date"),
    (orm(sex="Q"), "AE", "PID^1^8", "table 0001"),
    (orm(indication="melanoma"), "AE", "OBR^1^13", "indication 'melanoma'"),
    (orm(accession="", placer=""), "AE", "ORC^1^3", "no accession"),
    (orm(message_type="ADT^A01"), "AR", "MSH^1^9", "ADT^A01 is not accepted"),
    (orm(control="CA"), "AR", "ORC^1^1", "order control CA"),
    (orm(family=""), "AE", "PID^1^5", "a new patient needs family name"),
    (orm(family="Do\x00e"), "AR", "MSH^1", "NUL bytes"),  # PostgreSQL text cannot hold NUL: refused first
])
def test_a_bad_order_gets_a_nack_that_says_what_is_wrong_and_creates_nothing(department, message, code, location,
                                                                               words):
    answer = handle_hl7(message)
    assert msa(answer)[1] == code, answer
    assert words in said(answer), answer
    assert err(answer)[2] == location
    assert Patient.objects.count() == 0 and Case.objects.count() == 0
    kept = InboundMessage.objects.get()
    assert bytes(kept.raw) == message and kept.outcome == code and words in kept.error


def test_a_refused_case_rolls_back_its_new_patient(department, personas):
    # The accession exists for another patient: the new patient of this order must not stay behind.
    taken = personas["case"].accession
    answer = handle_hl7(orm(accession=taken, mrn="777777"))
    assert msa(answer)[1] == "AE" and "another patient" in said(answer)
    assert not Patient.objects.filter(mrn="777777").exists()


def test_no_department_configured_rejects(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = ""
    answer = handle_hl7(orm())
    assert msa(answer)[1] == "AR" and "not configured to accept orders" in said(answer)
    assert Patient.objects.count() == 0


def test_not_hl7_at_all_is_rejected_and_kept(department):
    answer = handle_hl7(b"GET / HTTP/1.1\r\n\r\n")
    assert msa(answer)[1] == "AR" and err(answer)[2] == "MSH^1"
    assert bytes(InboundMessage.objects.get().raw) == b"GET / HTTP/1.1\r\n\r\n"


def test_a_patient_stated_by_a_signed_report_is_not_renamed_by_an_order(department, personas, media_root):
    from cases.reports import do_create_draft, do_sign
    from tests.viewer import job_with_result

    case = personas["case"]
    do_sign(do_create_draft(case, job_with_result(case, n=500), personas["pathologist"]), personas["pathologist"],
            "pw-for-tests-123")
    # The same given name: a new family name alone is an update (another whole name is refused before)
    answer = handle_hl7(orm(mrn=case.patient.mrn, family="Renamed", given=case.patient.given_name, accession="S26-NEW"))
    assert msa(answer)[1] == "AE" and "signed report" in said(answer)
    assert not Case.objects.filter(accession="S26-NEW").exists()
    assert Patient.objects.get(pk=case.patient.pk).family_name != "Renamed"


# --- over MLLP ------------------------------------------------------------------------------------

@pytest.fixture
def listener(transactional_db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    settings.PDL1_INTEGRATION_MAX_MESSAGE_BYTES = 64 * 1024  # what mllp_listen passes as the limit
    DepartmentFactory(code="pathology")
    server = Listener(free_port(), limit=settings.PDL1_INTEGRATION_MAX_MESSAGE_BYTES)
    yield server
    server.stop()


def test_listener_answers_orders_on_one_connection(listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(orm()))
        first = read_block(sock)
        sock.sendall(frame(orm("MSG0002", family="")))  # a known patient: demographics may be left out
        second = read_block(sock)
        sock.sendall(frame(orm("MSG0003", message_type="ORU^R01")))
        third = read_block(sock)
    assert [msa(a)[1:3] for a in (first, second, third)] == [["AA", "MSG0001"], ["AA", "MSG0002"], ["AR", "MSG0003"]]
    assert Case.objects.filter(accession="S26-00042").count() == 1
    assert InboundMessage.objects.count() == 3
    # Audited with the sending system's address (no user acts over MLLP).
    entry = LogEntry.objects.get_for_object(InboundMessage.objects.get(control_id="MSG0001")).get()
    assert entry.action == LogEntry.Action.CREATE and entry.remote_addr == "127.0.0.1" and entry.actor is None


def test_a_connection_dropped_mid_message_leaves_nothing_and_the_listener_goes_on(listener):
    message = frame(orm())
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(message[: len(message) // 2])  # half a message, then the sender goes away
    time.sleep(0.3)
    assert InboundMessage.objects.count() == 0 and Patient.objects.count() == 0
    assert msa(send_order(listener.port, orm()))[1] == "AA"  # the resend is processed in full
    assert InboundMessage.objects.count() == 1


def test_a_message_over_the_size_limit_is_refused_and_kept_truncated(listener):
    big = orm("BIG0001", extra=["NTE|1||" + "x" * 200_000])
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(big))
        answer = read_block(sock)
        sock.sendall(frame(orm()))  # the same connection goes on with the next message
        after = read_block(sock)
    assert msa(answer)[1:3] == ["AR", "BIG0001"] and "larger than 65536 bytes" in said(answer)
    kept = InboundMessage.objects.get(control_id="BIG0001")
    assert big.startswith(bytes(kept.raw)) and 60_000 < len(kept.raw) <= 65536
    assert kept.outcome == "AR" and kept.case is None
    assert Case.objects.count() == 1 and msa(after)[1] == "AA"


def test_not_mllp_is_skipped_unanswered_up_to_the_next_block(listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(orm() + b"\x1c\r")  # no <VT>: not a message (logged), never answered
        sock.sendall(frame(orm("MSG0002")))
        assert msa(read_block(sock))[1:3] == ["AA", "MSG0002"]
    assert list(InboundMessage.objects.values_list("control_id", flat=True)) == ["MSG0002"]


def test_a_failure_while_handling_closes_without_an_answer_and_keeps_nothing(listener, monkeypatch):
    import integration.inbound

    def broken(raw):
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(integration.inbound, "handle_hl7", broken)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(orm()))
        sock.settimeout(10)
        assert sock.recv(100) == b""  # no ACK: the sender keeps the message and sends it again
    monkeypatch.undo()
    assert InboundMessage.objects.count() == 0
    assert msa(send_order(listener.port, orm()))[1] == "AA"
