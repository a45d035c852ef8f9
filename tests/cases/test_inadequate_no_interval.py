"""An inadequate specimen (fewer viable tumour cells than scoring needs) states no TPS, so it states no 95 %
interval and no near-cut-off warning either: the signed PDF, the FHIR bundle (conclusion and Observation),
the HL7 conclusion built from it, the report page and the viewer's scores say "not evaluable" and why.
Before, score_summary still computed both, and the PDF printed "interval 20.4-65.9 %" and "NEAR CUT-OFF"
beside the withheld value, the conclusion "TPS not evaluable ... near cut-off (95 % interval ... crosses 50 %)".
"""

import io
import json

import pytest
from django.test import Client
from pypdf import PdfReader

from analysis.scoring import INSUFFICIENT, NEAR_CUTOFF
from cases.choices import DocumentKind
from cases.documents import stored_documents
from cases.reports import do_create_draft, do_sign
from tests.viewer import job_with_result
from viewer.scores import job_scores

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_an_inadequate_specimen_states_no_interval_nor_near_cutoff_anywhere(personas, media_root):
    case, pathologist = personas["case"], personas["pathologist"]
    # 60 cells, 43 % positive: its interval (about 20-66 %) crosses 50 %, which was flagged before.
    job = job_with_result(case, n=60, seed=1)
    draft = do_create_draft(case, job, pathologist)
    tps = draft.scores["tps"]
    assert not draft.scores["adequacy"]["adequate"] and tps["status"] == INSUFFICIENT
    assert tps["interval"] is None and not tps["near_cutoff"]
    assert tps["cutoffs_crossed"] == [] and tps["uncertainty"] == ""

    signed = do_sign(draft, pathologist, PASSWORD)
    docs = stored_documents(signed)
    text = " ".join(pdf_text(docs[DocumentKind.PDF].data).split())
    assert "interval" not in text and "NEAR CUT-OFF" not in text and NEAR_CUTOFF not in text
    assert f"Adequacy: {INSUFFICIENT}: 60 viable tumour cells, fewer than 100" in text

    bundle = json.loads(docs[DocumentKind.FHIR].data)
    conclusion = bundle["entry"][0]["resource"]["conclusion"]
    assert conclusion.startswith(f"TPS not evaluable: {INSUFFICIENT};")
    assert f"{INSUFFICIENT}: 60 viable tumour cells, fewer than 100" in conclusion
    assert "near cut-off" not in conclusion and "interval" not in conclusion
    observation = bundle["entry"][1]["resource"]
    assert observation["id"].endswith("-tps") and "valueQuantity" not in observation
    assert "note" not in observation and observation["dataAbsentReason"]["coding"][0]["code"] == "error"

    client = Client()
    client.force_login(pathologist)
    html = client.get(f"/reports/{signed.pk}/").content.decode()
    assert 'id="report-tps-interval"' not in html and NEAR_CUTOFF not in html

    viewer = job_scores(job)  # the viewer states what the report will: no interval, no flag
    assert viewer["tps_interval"] is None and not viewer["near_cutoff"] and viewer["uncertainty"] == ""


def test_a_summary_from_before_the_fix_prints_no_interval_beside_a_withheld_value():
    """A draft snapshot taken before score_summary stopped giving an inadequate specimen an interval (it
    cannot be signed: its scores no longer match) still renders without one."""
    from analysis.scoring import interval_text
    from cases.report_pdf import _score_rows

    old = {"value": 43.33, "category": None, "status": INSUFFICIENT, "cutoffs": [], "approved": False,
           "table": None, "near_cutoff": True, "cutoffs_crossed": [50.0],
           "uncertainty": f"{NEAR_CUTOFF} (95 % interval 20.4-65.9 % crosses 50 %)",
           "interval": {"low": 20.36, "high": 65.9, "sampling_low": 30.36, "sampling_high": 55.9,
                        "detector_error_pp": 10.0, "blocks": 32}}
    assert _score_rows(old, "TPS", adequate=False) == [["TPS", "-", INSUFFICIENT, "none, NOT approved (research use). "
                                                                                   "Cut-offs: none configured"]]
    assert interval_text(old) == ""
