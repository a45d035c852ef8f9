"""A value the platform's records refuse (full_clean) is answered at the field it is about, with code 207
(review findings, 2026-12-01: every such refusal, an XO after sign-off or an over-long accession alike,
said ERR||PID^1^3|102^Data type error). SYNTHETIC patients."""

import copy

import pytest

from integration.inbound import handle_hl7
from tests.factories import DepartmentFactory
from tests.integration import fields, orm
from tests.integration.test_orders_fhir import SERVICE_REQUEST, post, service  # noqa: F401 (a fixture)


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


def error_of(answer: bytes) -> tuple[str, str, str]:
    """(ERR-2 location, ERR-3 code, ERR-8 text)."""
    err = fields(answer, "ERR")
    return err[2], err[3], err[8]


def test_an_over_long_accession_points_at_the_order_number(department):
    assert error_of(handle_hl7(orm(accession="A" * 80)))[:2] == ("ORC^1^3", "207^Application internal error^HL70357")


def test_an_over_long_name_points_at_the_patient_name(department):
    location, code, text = error_of(handle_hl7(orm(family="D" * 130)))
    assert (location, code[:3]) == ("PID^1^5", "207") and text.startswith("family_name:")


def test_a_change_to_a_signed_case_points_at_the_order(department, personas, media_root):
    from cases.reports import do_create_draft, do_sign
    from tests.viewer import job_with_result

    case = personas["case"]
    do_sign(do_create_draft(case, job_with_result(case, n=500), personas["pathologist"]), personas["pathologist"],
            "pw-for-tests-123")
    patient = case.patient
    answer = handle_hl7(orm(mrn=patient.mrn, family=patient.family_name, given=patient.given_name,
                            birth=f"{patient.birth_date:%Y%m%d}", accession=case.accession, control="XO",
                            indication="lung_nonsquamous"))
    location, code, text = error_of(answer)
    assert fields(answer, "MSA")[1] == "AE" and (location, code[:3]) == ("ORC^1", "207")
    assert "stated by the signed report" in text


def test_fhir_points_at_the_request_field(service):  # noqa: F811
    body = copy.deepcopy(SERVICE_REQUEST)
    body["identifier"][1]["value"] = "A" * 80
    response = post(service, body)
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["ServiceRequest.identifier"]
