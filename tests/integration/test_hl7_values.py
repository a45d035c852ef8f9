"""HL7 v2 values are read strictly: dates as HL7 writes them, escape sequences decoded in the message's
character set or refused, never silently changed (review findings, 2026-12-01). SYNTHETIC patients."""

import datetime

import hl7
import pytest

from cases.models import Patient
from integration import hl7text
from integration.hl7v2 import value_at
from integration.inbound import handle_hl7
from tests.factories import DepartmentFactory
from tests.integration import fields, orm
from tests.integration.test_orders_hl7 import said


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


@pytest.mark.parametrize("text, date", [
    ("19600517", datetime.date(1960, 5, 17)), ("196005171230", datetime.date(1960, 5, 17)),
    ("19600517123045.12+0100", datetime.date(1960, 5, 17)), ("19600517-0500", datetime.date(1960, 5, 17)),
    ("", None),
])
def test_hl7_dates(text, date):
    assert hl7text.parse_date(text) == date


@pytest.mark.parametrize("text", ["1960051", "196005", "19600517junk", "1960-05-17", "19600230", "196005172500",
                                  "19600517+01", "２０２６０１０１"])
def test_not_hl7_dates(text):
    with pytest.raises(ValueError):
        hl7text.parse_date(text)


@pytest.mark.parametrize("birth", ["1960051", "19600517junk", "19600230"])
def test_a_birth_date_that_is_not_a_whole_date_is_refused(department, birth):
    answer = handle_hl7(orm(birth=birth))
    assert fields(answer, "MSA")[1] == "AE" and "is not a date" in said(answer)
    assert fields(answer, "ERR")[2] == "PID^1^7" and Patient.objects.count() == 0


UTF8, LATIN1 = dict(separators="\r|~^&", esc="\\", charset="utf-8"), dict(separators="\r|~^&", esc="\\",
                                                                             charset="latin-1")


@pytest.mark.parametrize("text, options, value", [
    (r"O\F\B\S\x\T\y\R\z\E\q", UTF8, "O|B^x&y~z\\q"),
    (r"D\XC3A9\e", UTF8, "Dée"),  # one character of two bytes, not two Latin-1 characters
    (r"D\XE9\e", LATIN1, "Dée"),
    (r"\H\Doe\N\ ", UTF8, "Doe "),
    (r"O!F!B", dict(separators="\r#~^&", esc="!", charset="utf-8"), "O#B"),  # the message's own delimiters
])
def test_escape_sequences(text, options, value):
    assert hl7text.unescape(text, **options) == value


@pytest.mark.parametrize("text", [r"D\XZZ\e", r"D\X\e", r"D\XC3\e", r"Doe\.br\x", r"D\Cxxxx\oe", r"D\Z1\oe",
                                  "Doe\\", r"D\\oe", r"D\XC3A\e"])
def test_escape_sequences_that_cannot_be_read(text):
    with pytest.raises(ValueError):
        hl7text.unescape(text, **UTF8)


@pytest.mark.parametrize("family", [r"Do\XZZ\e", r"Doe\.br\x", "Doe\\", r"D\Cxxxx\oe", r"D\XC3\e"])
def test_an_escape_that_cannot_be_read_is_refused(department, family):
    answer = handle_hl7(orm(family=family))
    assert fields(answer, "MSA")[1] == "AE" and "PID-5.1: " in said(answer), answer
    assert fields(answer, "ERR")[2] == "PID^1^5^1^1" and Patient.objects.count() == 0


def test_hex_data_is_decoded_in_the_message_character_set(department):
    assert fields(handle_hl7(orm(family=r"D\XC3A9\e")), "MSA")[1] == "AA"
    assert Patient.objects.get().family_name == "Dée"
    latin1 = orm("MSG0002", mrn="2", accession="S26-2", family=r"D\XE9\e").replace(b"UNICODE UTF-8", b"8859/1")
    assert fields(handle_hl7(latin1), "MSA")[1] == "AA"
    assert Patient.objects.get(mrn="2").family_name == "Dée"


def test_values_are_found_as_python_hl7_finds_them():
    message = hl7.parse(orm(extra=["DG1|1||C34^Lung^I10"]).decode().strip("\r"))
    for path, value in [("PID.F3.R2.C4.S1", "NATIONAL"), ("PID.F5", "Doe"), ("PID.F5.R1.C2", "Jane"),
                        ("PID.F5.R1.C1.S2", ""), ("OBR.F15.R1.C1.S1", "Lung, right upper lobe core biopsy"),
                        ("OBR.F15.R1.C1.S2", ""), ("DG1.F3.R1.C2", "Lung"), ("SPM.F4", ""), ("PID.F30", ""),
                        ("MSH.F10", "MSG0001"), ("MSH.F9.R1.C2", "O01")]:
        assert hl7text.leaf(message, path) == value == value_at(message, path), path
