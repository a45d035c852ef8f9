"""The PDF, the FHIR bundle (and so the HL7 conclusion) and the report page print a TPS's 95 % interval
rounded outward at one decimal, and flag it near a cut-off exactly when the printed interval reaches one
(analysis.scoring.printed_bounds). Before, the flag was read from two decimals and the bounds printed
rounded to nearest: 44.31-49.96 % printed "44.3-50.0 %" unflagged, 49.96-55.0 % "50.0-55.0 % crosses 50 %".
"""

import io

import pytest
from django.test import Client
from pypdf import PdfReader

from analysis.scoring import NEAR_CUTOFF, Interval, score_summary
from cases.report_pdf import build_pdf
from cases.reports import do_create_draft, fhir_bundle
from tests.viewer import job_with_result

pytestmark = pytest.mark.django_db


def pdf_text(report) -> str:
    return " ".join("\n".join(page.extract_text() for page in PdfReader(io.BytesIO(build_pdf(report))).pages).split())


@pytest.mark.parametrize("low,high,positive,printed,verb", [
    (44.31, 49.96, 470, "44.3-50.0", "reaches"),
    (49.96, 55.0, 530, "49.9-55.0", "crosses"),
])
def test_every_output_prints_the_interval_outward_and_flags_it_as_printed(personas, media_root, low, high, positive,
                                                                         printed, verb):
    case = personas["case"]
    draft = do_create_draft(case, job_with_result(case, n=400, seed=21), personas["pathologist"])
    table = {"name": draft.scores["tps"]["table"], "approved": True, "cutoffs": draft.scores["tps"]["cutoffs"]}
    assert [c["lower"] for c in table["cutoffs"]] == [0.0, 1.0, 50.0]
    draft.scores["tps"] = score_summary({"positive": positive, "negative": 1000 - positive}, tps_table=table,
                                        tps_interval=Interval(low, high, 45.0, 48.0, 1.96, 40))["tps"]
    draft.save(update_fields=["scores"])
    warning = f"{NEAR_CUTOFF} (95 % interval {printed} % {verb} 50 %)"
    assert draft.scores["tps"]["near_cutoff"] and draft.scores["tps"]["uncertainty"] == warning

    bundle = fhir_bundle(draft)
    assert warning in bundle["entry"][0]["resource"]["conclusion"]
    tps_obs = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"].endswith("-tps"))
    assert any(n["text"].startswith(f"{warning}. 95 % interval {printed} %") for n in tps_obs["note"])

    text = pdf_text(draft)  # the table cell "44.3-50.0%" wraps before its "%"
    assert f"{printed} % NEAR CUT-OFF" in text and f"95 % interval {printed} %" in text
    assert "50.0-55.0" not in text and text.count(printed) == 3  # the cell, the warning, the interval sentence

    client = Client()
    client.force_login(personas["pathologist"])
    html = client.get(f"/cases/{case.pk}/report/").content.decode()
    assert 'id="report-tps-interval" class="flag"' in html and f"95 % interval {printed} %" in html
