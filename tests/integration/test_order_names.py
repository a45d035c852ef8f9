"""One normalisation of names for comparing and filing, and the same given name from both channels: a
harmless difference (case, spacing, Unicode composition, HL7 PID-5.3) neither rewrites the patient nor,
once a report is signed, refuses the order (review findings, inbound orders). SYNTHETIC patients."""

import copy

import pytest

from cases.models import Case, Patient
from cases.reports import do_create_draft, do_sign
from integration.inbound import handle_hl7
from tests.factories import DepartmentFactory
from tests.integration import fields, orm
from tests.integration.test_orders_fhir import SERVICE_REQUEST, post, service  # noqa: F401  fixture
from tests.integration.test_orders_hl7 import said
from tests.viewer import job_with_result


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


def msa(answer: bytes) -> str:
    return fields(answer, "MSA")[1]


def names() -> tuple:
    return Patient.objects.values_list("family_name", "given_name").get()


@pytest.mark.parametrize("family, given", [
    ("DOE", "JANE"), ("doe", "jane"), (" Doe ", "  Jane"), ("Doe", "Jane "),
])
def test_a_difference_in_case_or_spacing_is_no_change(department, family, given):
    handle_hl7(orm())
    assert msa(handle_hl7(orm("MSG0002", family=family, given=given, accession="S26-2"))) == "AA"
    assert names() == ("Doe", "Jane")


def test_composed_and_decomposed_letters_are_the_same_name(department):
    handle_hl7(orm(family="Mu\u0308ller"))  # decomposed: filed composed
    assert names() == ("M\u00fcller", "Jane")
    assert msa(handle_hl7(orm("MSG0002", family="M\u00fcller", accession="S26-2"))) == "AA"
    assert names() == ("M\u00fcller", "Jane")


def test_spaces_inside_a_name_are_filed_as_one(department):
    handle_hl7(orm(given="Mary  \tAnn"))
    assert names() == ("Doe", "Mary Ann")


def test_a_new_order_for_a_patient_with_a_signed_report_in_capitals_is_filed(department, personas, media_root):
    case = personas["case"]
    do_sign(do_create_draft(case, job_with_result(case, n=500), personas["pathologist"]), personas["pathologist"],
            "pw-for-tests-123")
    patient = case.patient
    answer = handle_hl7(orm(mrn=patient.mrn, family=patient.family_name.upper(), given=patient.given_name.upper(),
                            birth=f"{patient.birth_date:%Y%m%d}", accession="S26-NEW"))
    assert msa(answer) == "AA", said(answer)
    assert Case.objects.get(accession="S26-NEW").patient == patient
    patient.refresh_from_db()
    assert (patient.family_name, patient.given_name) == (case.patient.family_name, case.patient.given_name)


def test_hl7_files_every_given_name_as_fhir_does(service, settings):  # noqa: F811
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    assert post(service, SERVICE_REQUEST).status_code == 201  # given ["Ada", "M"]
    assert names() == ("Example", "Ada M")
    answer = handle_hl7(orm(mrn="F-1001", family="Example", given="Ada^M", birth="19580302", sex="F",
                            accession="S26-H1"))
    assert msa(answer) == "AA" and names() == ("Example", "Ada M")
    again = copy.deepcopy(SERVICE_REQUEST)
    again["identifier"][0]["value"], again["identifier"][1]["value"] = "PLC-6", "S26-F0002"  # another order
    assert post(service, again).status_code == 201 and names() == ("Example", "Ada M")


def test_hl7_given_name_without_further_names(department):
    handle_hl7(orm(given="Ada^^Dr"))  # PID-5.3 empty, PID-5.5 a prefix: not a given name
    assert names() == ("Doe", "Ada")
