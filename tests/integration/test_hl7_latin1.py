"""Orders in ISO 8859-1 (MSH-18 8859/1): their header is read, and answered, in that encoding (review
findings, 2026-12-01: the MSH was read as UTF-8, so control ids "Ä1" and "Ö1" were both "�1", the second
refused AR as a reused control id, and the ACK said "�"). SYNTHETIC patients."""

import pytest

from cases.models import Case
from integration import hl7v2
from integration.inbound import handle_hl7
from integration.models import InboundMessage
from tests.factories import DepartmentFactory
from tests.integration import orm


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


def latin1(control_id: str, accession: str, **kwargs) -> bytes:
    message = orm(control_id, accession=accession, **kwargs).decode("utf-8")
    return message.replace("UNICODE UTF-8", "8859/1").replace("|HIS|HOSP|", "|HÔPITAL|HOSP|").encode("latin-1")


def fields_of(answer: bytes, segment: str) -> list[str]:
    line = next(line for line in answer.decode("latin-1").split("\r") if line.startswith(segment + "|"))
    return line.split("|")


def test_control_ids_and_sender_are_read_in_the_messages_encoding(department):
    first, second = handle_hl7(latin1("Ä1", "S26-1")), handle_hl7(latin1("Ö1", "S26-2"))
    assert fields_of(first, "MSA")[1:3] == ["AA", "Ä1"] and fields_of(second, "MSA")[1:3] == ["AA", "Ö1"]
    assert sorted(InboundMessage.objects.values_list("control_id", "sender", "outcome")) == [
        ("Ä1", "HÔPITAL^HOSP", "AA"), ("Ö1", "HÔPITAL^HOSP", "AA")]
    assert Case.objects.count() == 2


def test_the_answer_is_in_the_messages_encoding_and_says_so(department):
    for answer in (handle_hl7(latin1("Ä1", "S26-1")), handle_hl7(latin1("Ä2", "S26-2", message_type="ORU^R01"))):
        header = fields_of(answer, "MSH")
        assert header[4] == "HÔPITAL" and header[17] == "8859/1"
        assert "Ô".encode("latin-1") in answer and "Ô".encode("utf-8") not in answer
    assert fields_of(answer, "MSA")[1:3] == ["AR", "Ä2"]


def test_a_resend_of_a_latin1_order_is_a_repeat(department):
    first = handle_hl7(latin1("Ä1", "S26-1"))
    assert handle_hl7(latin1("Ä1", "S26-1")) == first
    assert InboundMessage.objects.get().repeats == 1


def test_utf8_orders_are_answered_in_utf8(department):
    message = orm("É1").replace(b"|HIS|HOSP|", "|HÔPITAL|HOSP|".encode("utf-8"))
    answer = handle_hl7(message)
    header = answer.decode("utf-8").split("\r")[0].split("|")
    assert header[4] == "HÔPITAL" and header[17] == "UNICODE UTF-8"
    assert InboundMessage.objects.get().control_id == "É1"


def test_header_fields_name_the_charset_they_were_read_in():
    assert hl7v2.header_fields(latin1("Ä1", "S26-1"))["control_id"] == "Ä1"
    assert hl7v2.header_fields(latin1("Ä1", "S26-1"))["charset"] == "8859/1"
    unknown = orm("É1").replace(b"UNICODE UTF-8", b"8859/15")
    assert hl7v2.header_fields(unknown)["charset"] == ""
    assert hl7v2.header_fields(unknown)["control_id"] == "É1"  # read as UTF-8, as before


def test_a_control_character_copied_into_the_answer_is_escaped_as_a_byte_of_its_encoding(department):
    answer = handle_hl7(latin1("A\x851", "S26-1"))  # NEL, a C1 control: one byte in ISO 8859-1, two in UTF-8
    assert fields_of(answer, "MSA")[2] == r"A\X85\1"
