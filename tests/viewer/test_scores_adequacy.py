"""The viewer's scores (viewer.scores.job_scores) state the adequacy and give no category below 100 viable
tumour cells, in a case or not; a slide in no case gets no category at all (no clone, no indication: no
cut-offs); the command line's JSON states the same scores, and the merge's counts only as "detections
before review"."""

import pytest

from analysis.scoring import INSUFFICIENT
from cases.choices import AssayClone, Indication
from tests.viewer import client_for, job_with_result
from viewer.models import Region
from viewer.scores import NO_CASE, job_scores

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("in_case", [True, False])
def test_too_few_cells_give_no_category_and_say_so(personas, media_root, in_case):
    job = job_with_result(personas["case"] if in_case else None, n=50, seed=2)
    scores = job_scores(job)
    assert scores["tps"] is not None and scores["tps_category"] is None
    assert scores["adequacy"]["adequate"] is False and scores["adequacy"]["viable_tumour_cells"] == 50
    assert scores["category_note"] == f"{INSUFFICIENT} (n < 100): 50 viable tumour cells counted"
    if not in_case:
        return
    # The viewer's API carries them.
    body = client_for(personas["pathologist"]).get(f"/api/viewer/jobs/{job.pk}/corrections/").json()
    assert body["scores"]["adequacy"]["adequate"] is False and body["scores"]["tps_category"] is None
    assert body["scores"]["category_note"].startswith("insufficient for scoring (n < 100)")


def test_a_slide_in_no_case_gets_no_category(personas, media_root):
    scores = job_scores(job_with_result(None, n=3000, seed=1))
    assert scores["adequacy"]["adequate"] and scores["tps_category"] is None
    assert scores["category_note"] == NO_CASE


def test_an_adequate_case_slide_is_categorised_with_its_table(personas, media_root):
    case = personas["case"]
    scores = job_scores(job_with_result(case, n=3000, seed=1))
    assert scores["adequacy"]["adequate"] and scores["category_note"] == ""
    assert scores["tps_category"] == ("TPS >= 50%" if scores["tps"] >= 50 else "TPS 1-49%")
    case.assay_clone, case.indication = AssayClone.SP263, Indication.LUNG_SQUAMOUS
    case.save()
    assert job_scores(job_with_result(case, n=3000, seed=1))["tps_category"].startswith("TC ")


def test_regions_leaving_too_few_cells_give_no_category(personas, media_root):
    job = job_with_result(personas["case"], n=3000, seed=4)
    Region.objects.create(slide_id=job.slide_id, drawn_on=job, version=1, author=personas["pathologist"],
                          kind="tumour", vertices=[[0, 0], [400, 0], [400, 400], [0, 400]])
    scores = job_scores(job)
    assert sum(scores["counts"][k] for k in ("positive", "negative")) < 100
    assert scores["tps_category"] is None and INSUFFICIENT in scores["category_note"]


def test_the_command_lines_json_states_the_viewers_scores(personas, media_root):
    """A region excludes part of the slide: the JSON's TPS is the viewer's, the merge's counts are labelled
    as detections before review and carry no TPS."""
    from workers.management.commands.analyze_slide import result_json

    job = job_with_result(personas["case"], n=3000, seed=4)
    Region.objects.create(slide_id=job.slide_id, drawn_on=job, version=1, author=personas["pathologist"],
                          kind="exclude", vertices=[[0, 0], [4000, 0], [4000, 6000], [0, 6000]])
    viewer, result = job_scores(job), result_json(job)
    assert result["counts"] == viewer["counts"] != job.summary["counts"]
    assert result["tps"] == viewer["tps"] and result["tps_category"] == viewer["tps_category"]
    assert result["adequacy"] == viewer["adequacy"] and result["category_note"] == viewer["category_note"]
    before = result["detections_before_review"]
    assert before["counts"] == job.summary["counts"] and "tps" not in before
    assert before["note"].startswith("detections before review (whole slide, uncorrected)")
    few = job_with_result(None, n=50, seed=2)
    result = result_json(few)
    assert result["tps_category"] is None and result["adequacy"]["adequate"] is False
    assert result["category_note"].startswith("insufficient for scoring (n < 100)")
