"""Any bytes a sender may send get one HL7 answer (AA, AE or AR), never an exception: mutated orders
(deleted, replaced and inserted characters, delimiters included) and arbitrary bytes. SYNTHETIC patients."""

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from integration.inbound import handle_hl7
from tests.factories import DepartmentFactory
from tests.integration import fields, orm

pytestmark = pytest.mark.django_db
BASE = orm()
DELIMITERS = st.sampled_from([b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"\x00", b"\xff", b"MSH|", b"PID|"])


@st.composite
def mutated(draw):
    data = bytearray(BASE)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["delete", "insert", "replace"]))
        piece = draw(st.one_of(DELIMITERS, st.binary(min_size=1, max_size=4)))
        if kind == "delete":
            del data[at:at + draw(st.integers(1, 12))]
        elif kind == "insert":
            data[at:at] = piece
        else:
            data[at:at + len(piece)] = piece
    return bytes(data)


@pytest.fixture
def department(settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


@hsettings(max_examples=150, deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(message=st.one_of(mutated(), st.binary(max_size=300)))
def test_every_message_gets_one_hl7_answer(department, message):
    answer = handle_hl7(message)
    assert answer.startswith(b"MSH|^~\\&|PDL1|PATHOLOGY|") and answer.endswith(b"\r")
    assert fields(answer, "MSA")[1] in ("AA", "AE", "AR")
    if fields(answer, "MSA")[1] != "AA":
        assert fields(answer, "ERR")[8]  # a NACK always says what is wrong
