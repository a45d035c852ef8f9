"""The viewer's TPS category and near-cut-off flag are read against the cut-offs the report uses (the
case's clone and indication table), so what the pathologist sees is what the signed report states."""

import pytest

from cases.choices import Indication, ScoreType
from cases.models import Cutoff, CutoffTable
from cases.reports import score_snapshot
from tests.viewer import job_with_result
from viewer.scores import job_scores

pytestmark = pytest.mark.django_db


def test_an_edited_table_moves_the_viewers_flag_with_the_reports(personas, media_root):
    case = personas["case"]
    job = job_with_result(case, n=400, seed=21)
    tps = job_scores(job)["tps"]
    table = CutoffTable.objects.get(assay_clone=case.assay_clone, indication=case.indication, score_type=ScoreType.TPS)
    Cutoff.objects.create(table=table, lower_bound=round(tps), label="lab's own category")  # inside any interval
    viewer, report = job_scores(job), score_snapshot(case, job)["tps"]
    assert viewer["near_cutoff"] and report["near_cutoff"]
    assert viewer["uncertainty"] == report["uncertainty"] and f"{round(tps):g} %" in viewer["uncertainty"]
    assert viewer["tps_category"] == report["category"]


@pytest.mark.parametrize("clone, indication", [("SP263", Indication.BREAST_DUCTAL), ("SP263", Indication.LUNG_SQUAMOUS),
                                               ("22C3", Indication.LUNG_SQUAMOUS), ("SP142", Indication.BREAST_DUCTAL)])
def test_viewer_and_report_flag_the_same_results(personas, media_root, clone, indication):
    case = personas["case"]
    case.assay_clone, case.indication = clone, indication
    case.save()
    for seed in range(4):
        job = job_with_result(case, n=120, seed=30 + seed)
        viewer, report = job_scores(job), score_snapshot(case, job)["tps"]
        assert viewer["near_cutoff"] == report["near_cutoff"]
        assert viewer["uncertainty"] == report["uncertainty"] and viewer["tps_interval"] == report["interval"]
        assert viewer["tps_category"] == report["category"]  # None where the report says research use


def test_a_table_that_is_not_approved_gives_no_category_in_the_viewer_either(personas, media_root):
    case = personas["case"]
    CutoffTable.objects.filter(assay_clone=case.assay_clone, indication=case.indication).update(approved=False)
    job = job_with_result(case, n=120, seed=50)
    assert job_scores(job)["tps_category"] is None
    report = score_snapshot(case, job)
    assert report["research_use"] and report["tps"]["category"] is None


def test_a_breast_case_without_a_tps_table_is_read_against_no_lung_cut_off(personas, media_root):
    """No TPS table for 22C3 in breast: neither the viewer nor the report warns of a lung cut-off its
    interval crosses (they said "crosses 50 %"); both say no approved cut-offs apply. An approved CPS table
    (CPS is not computed) keeps the report research use."""
    from analysis.scoring import CUTOFFS_22C3_NSCLC_TPS, NO_CUTOFFS, Interval, cutoffs_crossed
    from tests.viewer import job_with_result

    case = personas["case"]
    case.indication = Indication.BREAST_DUCTAL
    case.save()
    CutoffTable.objects.filter(indication=Indication.BREAST_DUCTAL, score_type=ScoreType.CPS).update(approved=True)
    lung_flags = 0
    for seed in range(4):
        job = job_with_result(case, n=300, seed=60 + seed)
        viewer, report = job_scores(job), score_snapshot(case, job)
        lung_flags += bool(cutoffs_crossed(Interval(**viewer["tps_interval"]), CUTOFFS_22C3_NSCLC_TPS))
        assert not viewer["near_cutoff"] and viewer["cutoff_note"] == NO_CUTOFFS
        assert not report["tps"]["near_cutoff"] and report["tps"]["cutoff_note"] == NO_CUTOFFS
        assert report["research_use"] and report["tps"]["category"] is None
    assert lung_flags  # these intervals do reach 50 %: lung 22C3's cut-offs would have flagged them
