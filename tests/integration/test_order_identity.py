"""An order for a known MRN corrects at most one of the patient's family name, given name and sex, and only
with the patient's birth date; what it leaves out changes nothing (review findings, inbound orders). SYNTHETIC
patients."""

import copy
import datetime

import pytest

from cases.models import Case, Patient
from integration.inbound import handle_hl7
from tests.factories import DepartmentFactory
from tests.integration import fields, orm
from tests.integration.test_orders_fhir import SERVICE_REQUEST, post, service  # noqa: F401  fixture
from tests.integration.test_orders_hl7 import said

JANE = ("Doe", "Jane", datetime.date(1960, 5, 17), "female")


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


def msa(answer: bytes) -> str:
    return fields(answer, "MSA")[1]


def identity() -> tuple:
    return Patient.objects.values_list("family_name", "given_name", "birth_date", "sex").get()


@pytest.mark.parametrize("change, location", [
    # Another person's name with the given name and birth date left out: it renamed "Doe, Jane" to Smith, male
    (dict(family="Smith", given="", birth="", sex="M"), "PID^1^7"),
    (dict(family="Smith", given="", birth=""), "PID^1^7"),
    (dict(sex="M", birth=""), "PID^1^7"),
    (dict(given="Joan", birth=""), "PID^1^7"),
    # Two corrections at once, even with the birth date
    (dict(family="Smith", sex="M"), "PID^1^5"),
    (dict(given="John", sex="M"), "PID^1^5"),
    (dict(family="Smith", given="", sex="M"), "PID^1^5"),
])
def test_an_order_changing_the_identity_without_the_birth_date_or_twice_changes_nothing(department, change,
                                                                                       location):
    handle_hl7(orm())
    answer = handle_hl7(orm("MSG0002", accession="S26-00050", **change))
    assert msa(answer) == "AE" and "is the MRN right" in said(answer), said(answer)
    assert fields(answer, "ERR")[2] == location
    assert identity() == JANE and not Case.objects.filter(accession="S26-00050").exists()


@pytest.mark.parametrize("change, expected", [
    (dict(sex="M"), ("Doe", "Jane", datetime.date(1960, 5, 17), "male")),  # a correction, with the birth date
    (dict(given="Joan"), ("Doe", "Joan", datetime.date(1960, 5, 17), "female")),
    (dict(family="Roe", given=""), ("Roe", "Jane", datetime.date(1960, 5, 17), "female")),
])
def test_one_correction_with_the_birth_date_is_an_update(department, change, expected):
    handle_hl7(orm())
    assert msa(handle_hl7(orm("MSG0002", accession="S26-00050", **change))) == "AA"
    assert identity() == expected


def test_an_order_that_changes_nothing_needs_no_birth_date(department):
    handle_hl7(orm())
    answer = handle_hl7(orm("MSG0002", accession="S26-00050", given="", birth="", sex=""))
    assert msa(answer) == "AA" and identity() == JANE  # what it leaves out is kept
    assert Case.objects.get(accession="S26-00050").patient.mrn == "123456"


def test_a_sex_the_record_lacks_is_filled_in_with_a_correction(department):
    handle_hl7(orm(given="", sex="U"))
    assert msa(handle_hl7(orm("MSG0002", given="Jane", sex="F"))) == "AA"
    assert identity() == JANE


def test_a_service_request_without_the_birth_date_does_not_change_the_sex(service):  # noqa: F811
    assert post(service, SERVICE_REQUEST).status_code == 201
    flipped = copy.deepcopy(SERVICE_REQUEST)
    flipped["contained"][0]["gender"] = "male"
    del flipped["contained"][0]["birthDate"]
    response = post(service, flipped)
    assert response.status_code == 422 and response.json()["issue"][0]["expression"] == ["Patient.birthDate"]
    assert Patient.objects.get().sex == "female"
