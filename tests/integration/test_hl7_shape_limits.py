"""A message is refused (AR) before it is parsed when it holds more segments, fields in a segment or
repetitions in a field than an order has (review findings, 2026-12-01: a 1 MiB message of empty PID-3
repetitions held the listener for 370 s and 430 MB). SYNTHETIC patients."""

import pytest

from integration import hl7v2
from integration.inbound import handle_hl7
from integration.models import InboundMessage
from pdl1site.conf import DEFAULTS
from tests.factories import DepartmentFactory
from tests.integration import fields, orm


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


def with_pid_3_repetitions(count: int) -> bytes:
    """An order whose PID-3 holds `count` repetitions (empty ones, then the MRN and the national id)."""
    return orm().replace(b"|123456^^^HOSP^MR~", b"|" + b"~" * (count - 2) + b"123456^^^HOSP^MR~")


def test_too_many_repetitions_in_a_field_are_refused_before_parsing(department, monkeypatch):
    monkeypatch.setattr(hl7v2.hl7, "parse", lambda *args: pytest.fail("parsed"))
    answer = handle_hl7(with_pid_3_repetitions(hl7v2.MAX_REPETITIONS + 1))
    assert fields(answer, "MSA")[1] == "AR" and fields(answer, "ERR")[2] == "PID^1^3"
    assert f"PID-3 holds {hl7v2.MAX_REPETITIONS + 1} repetitions" in fields(answer, "ERR")[8]
    assert InboundMessage.objects.get().outcome == "AR"  # kept, like every message


def test_as_many_repetitions_as_allowed_are_read(department):
    assert fields(handle_hl7(with_pid_3_repetitions(hl7v2.MAX_REPETITIONS)), "MSA")[1] == "AA"


def test_a_message_of_the_default_size_made_of_repetitions_is_refused(department):
    message = orm().replace(b"|123456^^^HOSP^MR~", b"|" + b"~" * DEFAULTS["PDL1_INTEGRATION_MAX_MESSAGE_BYTES"])
    answer = handle_hl7(message)
    assert fields(answer, "MSA")[1] == "AR" and fields(answer, "ERR")[2] == "PID^1^3"


def test_too_many_fields_in_a_segment_are_refused(department):
    message = orm(extra=["NTE|1", "NTE|2|" + "|" * hl7v2.MAX_FIELDS])
    answer = handle_hl7(message)
    assert fields(answer, "MSA")[1] == "AR" and fields(answer, "ERR")[2] == "NTE^2"
    assert f"holds {hl7v2.MAX_FIELDS + 2} fields" in fields(answer, "ERR")[8]


def test_too_many_segments_are_refused(department):
    answer = handle_hl7(orm(extra=[f"NTE|{n}||note" for n in range(hl7v2.MAX_SEGMENTS)]))
    assert fields(answer, "MSA")[1] == "AR" and fields(answer, "ERR")[2] == "MSH^1"
    assert f"holds {hl7v2.MAX_SEGMENTS + 4} segments" in fields(answer, "ERR")[8]


def test_msh_fields_are_numbered_as_the_standard_does(department):
    message = orm().replace(b"|UNICODE UTF-8", b"|UNICODE UTF-8" + b"~" * hl7v2.MAX_REPETITIONS)
    assert fields(handle_hl7(message), "ERR")[2] == "MSH^1^18"
    assert fields(handle_hl7(orm("MSG0002")), "MSA")[1] == "AA"  # MSH-2's "~" is no repetition


def test_the_default_size_limit_fits_orders_not_floods():
    assert DEFAULTS["PDL1_INTEGRATION_MAX_MESSAGE_BYTES"] == 64 * 1024
