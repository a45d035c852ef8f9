"""Review findings (round 1) on inbound orders: further given names are no identity correction, placer numbers
are qualified by their ordering system and link only a case filed under them, cases filed before migration 0011
get their placer number, and ERR-2 holds no sender's delimiter. SYNTHETIC patients."""

import copy
import importlib

import pytest
from django.apps import apps

from cases.models import Case, Patient
from integration.fhir_orders import read_service_request
from integration.inbound import handle_hl7
from tests.factories import DepartmentFactory
from tests.integration import fields, orm
from tests.integration.test_orders_fhir import SERVICE_REQUEST, V2


@pytest.fixture
def department(db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


def msa(answer: bytes) -> str:
    return fields(answer, "MSA")[1]


def cases() -> list:
    return list(Case.objects.order_by("pk").values_list("accession", "placer_order"))


def sign(personas):
    from cases.reports import do_create_draft, do_sign
    from tests.viewer import job_with_result

    case = personas["case"]
    do_sign(do_create_draft(case, job_with_result(case, n=500), personas["pathologist"]), personas["pathologist"],
            "pw-for-tests-123")
    return case.patient


def order_of(patient, **kwargs) -> bytes:
    values = dict(mrn=patient.mrn, family=patient.family_name, given=patient.given_name,
                  birth=f"{patient.birth_date:%Y%m%d}")
    return orm(**{**values, **kwargs})


# --- given names -------------------------------------------------------------------------------------

def test_a_middle_name_is_no_correction_of_a_signed_patient(department, personas, media_root):
    patient = sign(personas)
    answer = handle_hl7(order_of(patient, given=f"{patient.given_name}^Marie", accession="S26-NEW"))
    assert msa(answer) == "AA", answer
    assert Case.objects.filter(accession="S26-NEW", patient=patient).exists()
    assert Patient.objects.get(pk=patient.pk).given_name == patient.given_name  # what the report states stays


def test_a_middle_name_fills_in_an_unsigned_patient_and_leaving_it_out_keeps_it(department):
    assert msa(handle_hl7(orm(given="Jane"))) == "AA"
    assert msa(handle_hl7(orm("MSG0002", given="jane^Marie", birth=""))) == "AA"  # no birth date: no correction
    assert Patient.objects.get().given_name == "jane Marie"
    assert msa(handle_hl7(orm("MSG0003", given="Jane", birth=""))) == "AA"
    assert Patient.objects.get().given_name == "jane Marie"


def test_a_given_name_correction_of_a_signed_patient_points_at_pid_5(department, personas, media_root):
    patient = sign(personas)
    answer = handle_hl7(order_of(patient, given="Janet", accession="S26-NEW"))
    err = fields(answer, "ERR")
    assert msa(answer) == "AE" and err[2] == "PID^1^5" and err[3].startswith("207^"), answer
    assert "stated by the signed report" in err[8]


# --- placer numbers ----------------------------------------------------------------------------------

def test_two_orders_reusing_a_placer_number_are_two_cases(department):
    assert msa(handle_hl7(orm(accession="S26-1", placer="12345"))) == "AA"
    answer = handle_hl7(orm("MSG0002", accession="S26-2", placer="12345", mrn="999"))
    assert msa(answer) == "AA", answer
    assert cases() == [("S26-1", "12345"), ("S26-2", "")]  # one case keeps the number: it only informs there


def test_placer_numbers_of_two_ordering_systems_are_apart(department):
    assert msa(handle_hl7(orm(accession="", placer="12345^ONCO"))) == "AA"
    # The same number from another system, with its filler number: another order, not the case filed under ONCO's
    assert msa(handle_hl7(orm("MSG0002", accession="S26-2", placer="12345^SURG", mrn="999"))) == "AA"
    assert cases() == [("12345", "ONCO|12345"), ("S26-2", "SURG|12345")]
    # ONCO's order with the laboratory's number: the case filed under ONCO's number takes it
    assert msa(handle_hl7(orm("MSG0003", accession="S26-1", placer="12345^ONCO"))) == "AA"
    assert cases() == [("S26-1", "ONCO|12345"), ("S26-2", "SURG|12345")]


def test_a_fhir_placer_number_is_qualified_by_its_system():
    body = copy.deepcopy(SERVICE_REQUEST)
    body["identifier"][0] = {"type": {"coding": [{"system": V2, "code": "PLAC"}]}, "value": "PLC-5",
                             "system": "urn:oid:1.2.3"}
    order = read_service_request(json_bytes(body))[1]
    assert (order.placer_order, order.placer_number, order.accession) == ("urn:oid:1.2.3|PLC-5", "PLC-5", "S26-F0001")
    long_system = copy.deepcopy(body)
    long_system["identifier"][0]["system"] = "https://hospital.example/" + "x" * 80
    key = read_service_request(json_bytes(long_system))[1].placer_order
    assert len(key) <= 64 and key.endswith("|PLC-5")


def json_bytes(body) -> bytes:
    import json

    return json.dumps(body).encode()


def test_a_case_filed_before_0011_gets_its_placer_number(department):
    fill = importlib.import_module("cases.migrations.0012_placer_order_of_earlier_cases").forwards
    assert msa(handle_hl7(orm(accession="", placer="PLC-77"))) == "AA"
    assert msa(handle_hl7(orm("MSG0002", accession="S26-1", placer="PLC-1^ONCO"))) == "AA"
    Case.objects.update(placer_order="")  # what 0011 left on cases filed before it
    fill(apps, None)
    assert cases() == [("PLC-77", "PLC-77"), ("S26-1", "ONCO|PLC-1")]
    answer = handle_hl7(orm("MSG0003", accession="S26-777", placer="PLC-77"))
    assert msa(answer) == "AA" and cases() == [("S26-777", "PLC-77"), ("S26-1", "ONCO|PLC-1")]
    fill(apps, None)  # again: nothing changes
    assert cases() == [("S26-777", "PLC-77"), ("S26-1", "ONCO|PLC-1")]


def test_the_placer_migration_runs_on_an_empty_database(db):
    importlib.import_module("cases.migrations.0012_placer_order_of_earlier_cases").forwards(apps, None)
    assert not Case.objects.exists()


# --- ERR location --------------------------------------------------------------------------------------

def test_a_sender_segment_name_with_a_delimiter_stays_out_of_err_2(department):
    answer = handle_hl7(orm(extra=["Z|9" + "|" * 300]))
    err = fields(answer, "ERR")
    assert err[2] == "SEG^1" and err[3].startswith("207^"), err[:4]

