"""The report's FHIR bundle is built and validated with fhir.resources (R4B models, R4 JSON)."""

import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from cases import reports
from cases.choices import DocumentKind
from cases.documents import stored_documents
from cases.reports import do_amend, do_create_draft, do_sign, fhir_bundle
from tests.viewer import job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"


@pytest.fixture
def signed(personas, media_root):
    job = job_with_result(personas["case"], n=3000, seed=3)
    draft = do_create_draft(personas["case"], job, personas["pathologist"], comment="Good cellularity.")
    do_sign(draft, personas["pathologist"], PASSWORD)
    draft.refresh_from_db()
    return draft


def test_stored_bundle_is_valid_fhir_and_states_the_report(signed):
    data = stored_documents(signed)[DocumentKind.FHIR].data
    bundle = Bundle.model_validate_json(data)
    report, tps, cps = (entry.resource for entry in bundle.entry)
    assert report.get_resource_type() == "DiagnosticReport" and report.status == "final"
    assert report.issued == signed.signed_at  # an instant, serialised with "Z"
    assert json.loads(data)["entry"][0]["resource"]["issued"].endswith("Z")
    assert float(tps.valueQuantity.value) == signed.scores["tps"]["value"]
    assert tps.code.coding[0].code == "85147-7" and cps.dataAbsentReason.coding[0].code == "not-performed"
    assert report.conclusion.endswith(". Good cellularity.")


def test_amended_non_22c3_report_has_no_empty_coding(signed, personas):
    amendment = do_amend(signed, personas["pathologist"], "clone was SP263")
    case = personas["case"]
    case.assay_clone = "SP263"
    case.save()
    amendment = do_create_draft(case, signed.job, personas["pathologist"])
    do_sign(amendment, personas["pathologist"], PASSWORD)
    amendment.refresh_from_db()
    diagnostic = fhir_bundle(amendment)["entry"][0]["resource"]
    # FHIR allows no empty arrays: the hand-written bundle had "coding": [] here.
    assert diagnostic["code"] == {"text": "PD-L1 IHC (SP263) report"}
    assert diagnostic["status"] == "amended"
    assert diagnostic["extension"][0] == {"url": "urn:pdl1:amendment-reason", "valueString": "clone was SP263"}


def test_an_invalid_resource_is_refused_before_it_is_stored(signed, monkeypatch):
    # A subject reference that is not a Reference (a bare string) cannot be built.
    monkeypatch.setattr(reports, "_subject", lambda report: "Patient/1")
    with pytest.raises(ValidationError):
        fhir_bundle(signed)
