"""Each result's positive % comes with a 95 % interval; one that crosses a clinical cut-off is
flagged "near cut-off: count manually or review" in the viewer's scores, the report PDF and FHIR."""

import io
import json

import numpy as np
import pytest
from pypdf import PdfReader

from analysis import accuracy
from analysis.scoring import NEAR_CUTOFF
from cases.reports import do_create_draft, fhir_bundle
from cases.report_pdf import build_pdf
from tests.viewer import client_for, job_with_result, random_detections
from viewer.scores import job_scores

pytestmark = pytest.mark.django_db


@pytest.fixture
def measured(tmp_path, monkeypatch):
    """A measured-error table in which classic is off by 2 points on unseen labs."""
    path = tmp_path / "measured_error.json"
    path.write_text(json.dumps({"detectors": {"classic:membrane:constant": {"positive_pct_error_pp": 2.0,
                                                          "basis": "test table: classic 2 points"}}}))
    monkeypatch.setattr(accuracy, "MEASURED_ERROR_FILE", path)
    return path


def classic_job(case, positive_fraction, n=6000, seed=0):
    job = job_with_result(case, n=n, seed=seed)
    from analysis.detection_store import write_store
    from django.conf import settings

    xy, labels, scores = random_detections(n, job.slide.width, job.slide.height, seed, positive_fraction)
    write_store(settings.MEDIA_ROOT / job.result_file, xy, labels, scores, width=job.slide.width,
                height=job.slide.height, mpp=job.slide.mpp_x)
    job.provenance = {"kind": "classic", "parameters": {}}
    job.save(update_fields=["provenance"])
    return job


def test_interval_holds_the_tps_and_is_widened_by_the_measured_error(personas, measured):
    scores = job_scores(classic_job(personas["case"], 0.3))
    iv = scores["tps_interval"]
    assert iv["low"] < scores["tps"] < iv["high"] and iv["detector_error_pp"] == 2.0
    assert iv["low"] == pytest.approx(iv["sampling_low"] - 2.0, abs=0.01)
    assert not scores["near_cutoff"] and scores["uncertainty"] == ""
    assert scores["detector_error"] == "test table: classic 2 points"


def test_a_tps_near_50_is_flagged_in_viewer_report_and_fhir(personas, measured):
    job = classic_job(personas["case"], 0.49)
    body = client_for(personas["pathologist"]).get(f"/api/viewer/jobs/{job.pk}/corrections/").json()
    assert body["scores"]["near_cutoff"] and body["scores"]["uncertainty"].startswith(NEAR_CUTOFF)
    draft = do_create_draft(personas["case"], job, personas["pathologist"])
    assert draft.scores["tps"]["near_cutoff"] and draft.scores["tps"]["cutoffs_crossed"] == [50.0]
    bundle = fhir_bundle(draft)
    assert NEAR_CUTOFF in bundle["entry"][0]["resource"]["conclusion"]
    tps_obs = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"].endswith("-tps"))
    assert any("95 % interval" in n["text"] for n in tps_obs["note"])
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(build_pdf(draft))).pages)
    assert "NEAR CUT-OFF" in text and "95 % interval" in text


def test_an_unmeasured_detector_is_widened_by_the_default(personas, tmp_path, monkeypatch):
    monkeypatch.setattr(accuracy, "MEASURED_ERROR_FILE", tmp_path / "absent.json")
    scores = job_scores(classic_job(personas["case"], 0.3))
    assert scores["tps_interval"]["detector_error_pp"] == accuracy.UNMEASURED_ERROR_PP
    assert "not measured" in scores["detector_error"]
    # 30 % +- >10 points reaches neither 1 % nor 50 %; 45 % does reach 50 %.
    assert not scores["near_cutoff"]
    assert job_scores(classic_job(personas["case"], 0.45, seed=1))["near_cutoff"]


def test_shipped_measured_table_is_well_formed():
    table = accuracy.measured_table()
    if not table:
        pytest.skip("no measured_error.json shipped yet")
    for key, entry in table["detectors"].items():
        assert entry["positive_pct_error_pp"] >= 0 and entry["basis"], key
