"""An order whose test code and text name different clones is refused on both channels: the clone decides the
report's cut-offs, and HL7 filed the code's clone where FHIR filed the text's (review findings, inbound
orders). SYNTHETIC patients."""

import copy

import pytest

from cases.models import Case
from integration.inbound import handle_hl7
from tests.integration import fields, orm
from tests.integration.test_orders_fhir import SERVICE_REQUEST, post, service  # noqa: F401  fixture
from tests.integration.test_orders_hl7 import said

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("clone", ["85147-7^PD-L1 SP263^LN", "PDL1^PD-L1 22C3^L^^SP142", "X^PD-L1 22C3 or 28-8^L"])
def test_an_hl7_order_naming_two_clones_is_refused(service, clone):  # noqa: F811
    answer = handle_hl7(orm(clone=clone))
    assert fields(answer, "MSA")[1] == "AE" and "different clones" in said(answer), said(answer)
    assert fields(answer, "ERR")[2] == "OBR^1^4" and Case.objects.count() == 0


def test_a_service_request_naming_two_clones_is_refused(service):  # noqa: F811
    body = copy.deepcopy(SERVICE_REQUEST)
    body["code"]["text"] = "PD-L1 SP263"  # LOINC 85147-7 is 22C3
    response = post(service, body)
    assert response.status_code == 422 and "different clones" in response.json()["issue"][0]["diagnostics"]
    assert response.json()["issue"][0]["expression"] == ["ServiceRequest.code"] and Case.objects.count() == 0


@pytest.mark.parametrize("clone, assay", [("85147-7^PD-L1 22C3^LN", "22C3"), ("85147-7^PD-L1 IHC^LN", "22C3"),
                                          ("PDL1^PD-L1 SP263^L^^SP263 IHC", "SP263")])
def test_codes_and_texts_that_agree_are_filed(service, clone, assay):  # noqa: F811
    assert fields(handle_hl7(orm(clone=clone)), "MSA")[1] == "AA"
    assert Case.objects.get().assay_clone == assay
