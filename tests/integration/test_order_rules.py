"""What an order may do: it never renames another person's record, files one order per message, follows
its order control, and is for PD-L1 (review findings, 2026-12-01). SYNTHETIC patients."""

import copy
import datetime

import pytest

from cases.models import Case, Patient
from integration.inbound import handle_hl7
from integration.models import InboundMessage
from tests.factories import DepartmentFactory
from tests.integration import fields, orm
from tests.integration.test_orders_fhir import SERVICE_REQUEST, post, service  # noqa: F401  fixture
from tests.integration.test_orders_hl7 import said


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


def msa(answer: bytes) -> str:
    return fields(answer, "MSA")[1]


def identity() -> tuple:
    return Patient.objects.values_list("family_name", "given_name", "birth_date", "sex").get()


# --- a known MRN --------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, location", [
    (dict(birth="19900101"), "PID^1^7"),
    (dict(family="Smith", given="Bob"), "PID^1^5"),
    (dict(family="Smith", given="Bob", birth="19900101", sex="M"), "PID^1^7"),
])
def test_an_order_naming_another_person_for_a_known_mrn_changes_nothing(department, change, location):
    handle_hl7(orm())
    before = identity()
    answer = handle_hl7(orm("MSG0002", accession="S26-00050", **change))
    assert msa(answer) == "AE" and "is the MRN right" in said(answer) and fields(answer, "ERR")[2] == location
    assert identity() == before and not Case.objects.filter(accession="S26-00050").exists()


def test_a_known_patient_is_still_updated(department):
    handle_hl7(orm(given="", sex="U"))
    assert msa(handle_hl7(orm("MSG0002", family="DOE", given="Jane", sex="F"))) == "AA"  # data the record lacked
    assert identity() == ("Doe", "Jane", datetime.date(1960, 5, 17), "female")  # "DOE" is no new name
    assert msa(handle_hl7(orm("MSG0003", family="Roe"))) == "AA"  # a new family name, the same given name
    assert identity()[0] == "Roe"


@pytest.mark.parametrize("sex", ["U", "N"])
def test_an_unknown_sex_never_replaces_a_known_one(department, sex):
    handle_hl7(orm(sex="F"))
    assert msa(handle_hl7(orm("MSG0002", sex=sex))) == "AA"
    assert identity()[3] == "female"


def test_a_service_request_for_a_known_mrn_follows_the_same_rules(service):  # noqa: F811
    assert post(service, SERVICE_REQUEST).status_code == 201
    unknown = copy.deepcopy(SERVICE_REQUEST)
    unknown["contained"][0]["gender"] = "unknown"
    assert post(service, unknown).status_code == 200 and identity()[3] == "female"
    born = copy.deepcopy(SERVICE_REQUEST)
    born["contained"][0]["birthDate"] = "1970-01-01"
    response = post(service, born)
    assert response.status_code == 422 and response.json()["issue"][0]["expression"] == ["Patient.birthDate"]
    assert identity()[2] == datetime.date(1958, 3, 2)
    assert InboundMessage.objects.filter(outcome="AE").count() == 1


# --- one order per message ----------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [
    ["ORC|NW|PLC-78|S26-00043", "OBR|2|PLC-78|S26-00043|85147-7^PD-L1 22C3^LN|||||||||lung_squamous"],
    ["OBR|2|PLC-77|S26-00042|85147-7^PD-L1 22C3^LN"],
])
def test_a_message_with_more_than_one_order_is_refused(department, extra):
    answer = handle_hl7(orm(extra=extra))
    assert msa(answer) == "AR" and "one order per message" in said(answer)
    assert Case.objects.count() == 0 and Patient.objects.count() == 0


# --- order control and the test ordered ---------------------------------------------------------------

def test_a_status_change_is_not_an_order(department):
    answer = handle_hl7(orm(control="SC", accession="SC-1"))
    assert msa(answer) == "AR" and fields(answer, "ERR")[2] == "ORC^1^1" and "order control SC" in said(answer)
    handle_hl7(orm("MSG0002"))
    answer = handle_hl7(orm("MSG0003", control="SC", clone="PDL1^PD-L1 SP142^L"))  # for a known case too
    assert msa(answer) == "AR" and Case.objects.get().assay_clone == "22C3"
    assert list(Case.objects.values_list("accession", flat=True)) == ["S26-00042"]


def test_a_change_needs_a_known_case(department):
    answer = handle_hl7(orm(control="XO", accession="XO-1", mrn="55"))
    assert msa(answer) == "AE" and "no case with accession XO-1" in said(answer)
    assert fields(answer, "ERR")[2:4] == ["ORC^1^1", "204^Unknown key identifier^HL70357"]
    assert Case.objects.count() == 0 and Patient.objects.count() == 0
    assert msa(handle_hl7(orm("MSG0002", accession="XO-1", mrn="55"))) == "AA"  # NW creates it
    assert msa(handle_hl7(orm("MSG0003", control="XO", accession="XO-1", mrn="55",
                              clone="PDL1^PD-L1 SP263^L"))) == "AA"
    assert Case.objects.get().assay_clone == "SP263"


@pytest.mark.parametrize("clone, code, words", [
    ("HER2^HER2 IHC^L", "103", "'HER2 / HER2 IHC' is not PD-L1"),
    ("", "101", "no test is ordered"),
])
def test_an_order_for_another_test_is_refused(department, clone, code, words):
    answer = handle_hl7(orm(clone=clone))
    assert msa(answer) == "AE" and words in said(answer), answer
    assert fields(answer, "ERR")[2] == "OBR^1^4" and fields(answer, "ERR")[3].startswith(code)
    assert Case.objects.count() == 0


@pytest.mark.parametrize("clone, assay", [
    ("85147-7^PD-L1 22C3^LN", "22C3"), ("85147-7", "22C3"), ("PDL1^PD-L1 IHC SP263^L", "SP263"),
    ("X1^PD-L1 IHC^L", "other"), ("CD274^CD274 IHC^99LAB", "other"), ("L7^IHC^L^^SP142", "SP142"),
    ("L8^28-8 IHC^L", "28-8"),
])
def test_pd_l1_orders_are_accepted(department, clone, assay):
    assert msa(handle_hl7(orm(clone=clone))) == "AA"
    assert Case.objects.get().assay_clone == assay


@pytest.mark.parametrize("code, words", [({"text": "HER2 IHC"}, "is not PD-L1"), (None, "no test is ordered")])
def test_a_service_request_for_another_test_is_refused(service, code, words):  # noqa: F811
    body = copy.deepcopy(SERVICE_REQUEST)
    body.pop("code") if code is None else body.update(code=code)
    response = post(service, body)
    assert response.status_code == 422 and words in response.json()["issue"][0]["diagnostics"]
    assert Case.objects.count() == 0
