"""Whose MRN an HL7 order carries: accepting orders requires the hospital's assigning authority (system check
integration.E003), and without one PID-3 holding MR numbers of several authorities is refused, never filed
under the first (review findings, inbound orders). SYNTHETIC patients."""

import pytest

from cases.models import Case, Patient
from integration.checks import check_order_intake
from integration.inbound import handle_hl7
from integration.models import InboundMessage
from tests.factories import DepartmentFactory
from tests.integration import fields, orm
from tests.integration.test_orders_hl7 import said

TWO_HOSPITALS = orm().replace(b"123456^^^HOSP^MR~990011^^^NATIONAL^NI", b"555^^^OTHERHOSP^MR~123456^^^HOSP^MR")


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    return DepartmentFactory(code="pathology")


def test_accepting_orders_without_an_mrn_authority_fails_the_system_check(settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = ""
    assert [e.id for e in check_order_intake(None)] == ["integration.E003"]
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    assert check_order_intake(None) == []
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = settings.PDL1_INTEGRATION_MRN_AUTHORITY = ""  # no orders
    assert check_order_intake(None) == []


def test_mrns_of_two_authorities_without_a_configured_one_are_refused(department, settings):
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = ""
    answer = handle_hl7(TWO_HOSPITALS)
    assert fields(answer, "MSA")[1] == "AR" and fields(answer, "ERR")[2] == "PID^1^3"
    assert "OTHERHOSP, HOSP" in said(answer) and "PDL1_INTEGRATION_MRN_AUTHORITY" in said(answer)
    assert Patient.objects.count() == 0 and Case.objects.count() == 0
    assert InboundMessage.objects.get().outcome == "AR"


def test_the_configured_authority_picks_the_hospitals_mrn(department, settings):
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    assert fields(handle_hl7(TWO_HOSPITALS), "MSA")[1] == "AA"
    assert Patient.objects.get().mrn == "123456"


def test_one_mr_authority_is_still_read_without_a_configured_one(department, settings):
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = ""
    assert fields(handle_hl7(orm()), "MSA")[1] == "AA"  # 123456^^^HOSP^MR and a national number of type NI
    assert Patient.objects.get().mrn == "123456"
