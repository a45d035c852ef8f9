"""What an answer copies from the message is written with our delimiters, and a resend stamped anew is a
repeat (review findings, 2026-12-01). SYNTHETIC patients."""

import hl7
import pytest

from cases.models import Case
from integration import hl7text
from integration.inbound import handle_hl7
from integration.models import InboundMessage
from tests.factories import DepartmentFactory
from tests.integration import fields, orm


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


def parsed(answer: bytes):
    return hl7.parse(answer.decode("utf-8").strip("\r"))


def test_a_resend_stamped_with_a_new_time_is_a_repeat(department):
    first = handle_hl7(orm())
    again = handle_hl7(orm().replace(b"|20261130120000|", b"|20261130120005|"))
    assert again == first and fields(first, "MSA")[1] == "AA"
    assert InboundMessage.objects.get().repeats == 1 and Case.objects.count() == 1
    other = handle_hl7(orm(accession="S26-99999").replace(b"|20261130120000|", b"|20261130120005|"))
    assert fields(other, "MSA")[1] == "AR"  # other content under the same control id is still refused


def test_msa_2_is_the_control_id_as_sent(department):
    answer = handle_hl7(orm(r"ID\F\1"))
    assert fields(answer, "MSA")[2] == r"ID\F\1" and str(parsed(answer)["MSA.F2"]) == "ID|1"


def test_an_answer_to_a_message_with_other_delimiters_is_well_formed(department):
    message = orm(r"ID!S!2").replace(b"|", b"#").replace(b"MSH#^~\\&#", b"MSH#^~!&#")
    message = message.replace(b"#HIS#HOSP#", b"#HIS|X^Y#HOSP#", 1)  # "|" is data there; "^" its component
    answer = handle_hl7(message)
    header = fields(answer, "MSH")
    assert header[4:6] == [r"HIS\F\X^Y", "HOSP"] and header[8] == "ACK^O01^ACK" and header[10:12] == ["P", "2.5.1"]
    assert fields(answer, "MSA")[2] == r"ID\S\2" and str(parsed(answer)["MSA.F2"]) == "ID^2"


@pytest.mark.parametrize("text, delimiters, written", [
    (r"ID\F\1", hl7text.OURS, r"ID\F\1"),
    (r"A\X41\ \H\b", hl7text.OURS, r"A\X41\ \H\b"),
    ("HIS|X", hl7text.delimiters_of("^~\\&", "#"), r"HIS\F\X"),
    ("ID!F!1", hl7text.delimiters_of("^~!&", "|"), r"ID\F\1"),
    ("a\\b!", hl7text.delimiters_of("^~!&", "|"), r"a\E\b!"),
    ("A\\", hl7text.OURS, r"A\E\ "[:-1]),  # an escape left open is data
    ("a\x0bb", hl7text.OURS, r"a\X0B\b"),
    ("A*B$C~D^E", hl7text.delimiters_of("*~!$", "|"), r"A^B&C~D\S\E"),  # their structure, our data
])
def test_reencode(text, delimiters, written):
    assert hl7text.reencode(text, delimiters) == written
