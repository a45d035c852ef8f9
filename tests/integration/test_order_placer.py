"""One order is one case: an order sent with the placer order number alone, then again with the laboratory's
filler number, finds its case by the placer number (stored on the case) instead of creating a second one;
numbers that name different cases are refused (review findings, inbound orders). SYNTHETIC patients."""

import copy

import pytest

from cases.models import Case
from integration.inbound import handle_hl7
from tests.factories import CaseFactory
from tests.integration import fields, orm
from tests.integration.test_orders_fhir import SERVICE_REQUEST, V2, post, service  # noqa: F401  fixture
from tests.integration.test_orders_hl7 import said

pytestmark = pytest.mark.django_db


def msa(answer: bytes) -> str:
    return fields(answer, "MSA")[1]


def cases() -> list:
    return list(Case.objects.order_by("pk").values_list("accession", "placer_order", "assay_clone"))


def test_the_filler_number_after_the_placer_number_is_the_same_case(service):  # noqa: F811
    assert msa(handle_hl7(orm(accession="", placer="PLC-77"))) == "AA"
    assert cases() == [("PLC-77", "PLC-77", "22C3")]
    answer = handle_hl7(orm("MSG0002", accession="S26-777", placer="PLC-77", control="XO",
                            clone="PDL1^PD-L1 SP263^L"))
    assert msa(answer) == "AA", said(answer)
    assert cases() == [("S26-777", "PLC-77", "SP263")]  # the laboratory's number replaces the placer's
    # Sent again with the placer's number alone: still that case
    assert msa(handle_hl7(orm("MSG0003", accession="", placer="PLC-77"))) == "AA"
    assert cases() == [("S26-777", "PLC-77", "22C3")]


def test_the_placer_number_is_filled_in_on_a_case_known_by_its_filler_number(service):  # noqa: F811
    assert msa(handle_hl7(orm(accession="S26-1", placer=""))) == "AA"
    assert msa(handle_hl7(orm("MSG0002", accession="S26-1", placer="PLC-1"))) == "AA"
    assert cases() == [("S26-1", "PLC-1", "22C3")]


def test_a_filler_number_of_another_placer_number_is_refused(service):  # noqa: F811
    handle_hl7(orm(accession="S26-1", placer="PLC-1"))
    answer = handle_hl7(orm("MSG0002", accession="S26-1", placer="PLC-2"))
    assert msa(answer) == "AE" and "accession S26-1 is the case of placer order number PLC-1" in said(answer)
    assert cases() == [("S26-1", "PLC-1", "22C3")]


def test_a_placer_and_a_filler_number_of_two_cases_are_refused(service):  # noqa: F811
    handle_hl7(orm(accession="", placer="PLC-1"))  # filed under the placer's number, waiting for its filler number
    handle_hl7(orm("MSG0002", accession="S26-2", placer=""))
    answer = handle_hl7(orm("MSG0003", accession="S26-2", placer="PLC-1"))
    assert msa(answer) == "AE" and "one order is one case" in said(answer) and fields(answer, "ERR")[2] == "ORC^1^2"
    assert cases() == [("PLC-1", "PLC-1", "22C3"), ("S26-2", "", "22C3")]


def test_a_case_filed_under_the_placer_number_keeps_its_patient(service, personas):  # noqa: F811
    CaseFactory(accession="PLC-9", placer_order="PLC-9", patient=personas["case"].patient)
    answer = handle_hl7(orm(accession="S26-9", placer="PLC-9"))
    assert msa(answer) == "AE" and "another patient" in said(answer)
    assert Case.objects.filter(accession="PLC-9").exists() and not Case.objects.filter(accession="S26-9").exists()


def test_a_service_request_finds_the_case_by_its_placer_number(service):  # noqa: F811
    placer_only = copy.deepcopy(SERVICE_REQUEST)
    placer_only["identifier"] = [{"type": {"coding": [{"system": V2, "code": "PLAC"}]}, "value": "PLC-5"}]
    assert post(service, placer_only).status_code == 201
    assert post(service, SERVICE_REQUEST).status_code == 200  # PLC-5 with the filler number S26-F0001
    assert cases() == [("S26-F0001", "PLC-5", "22C3")]
