"""Regions belong to the slide: drawn or deleted through one run of it, they move every run's version,
so a reviewer of another run of the same slide meets a conflict, not a silent change of their counts."""

import pytest

from tests.viewer import job_with_result
from viewer.corrections import do_add_correction
from viewer.errors import CorrectionConflict
from viewer.human_layer import correction_version
from viewer.regions import do_add_region, do_delete_region
from viewer.scores import job_scores

pytestmark = pytest.mark.django_db
SQUARE = [[0, 0], [3000, 0], [3000, 3000], [0, 3000]]


@pytest.fixture
def two_runs(personas, media_root):
    first = job_with_result(personas["case"], n=300, seed=41)
    second = job_with_result(personas["case"], n=300, seed=42)
    second.slide = first.slide  # a re-run of the same slide
    second.save()
    return first, second


def test_a_region_drawn_through_one_run_moves_the_other_runs_version(personas, two_runs):
    first, second = two_runs
    before = job_scores(second)["counts"]
    region = do_add_region(first, personas["pathologist"], {"base_version": 0, "kind": "tumour", "vertices": SQUARE})
    assert job_scores(second)["counts"] != before  # the other run counts inside it too
    assert correction_version(first) == correction_version(second) == 1
    with pytest.raises(CorrectionConflict):  # the reviewer of the other run loaded it at version 0
        do_add_correction(second, personas["pathologist"], {"base_version": 0, "op": "delete", "detection": 0})
    do_delete_region(first, personas["pathologist"], region["item"]["id"], {"base_version": 1})
    assert correction_version(second) == 2 and job_scores(second)["counts"] == before


def test_a_region_on_another_slide_leaves_this_runs_version(personas, two_runs):
    first, second = two_runs
    elsewhere = job_with_result(personas["case"], n=50, seed=43)
    assert elsewhere.slide_id != first.slide_id
    do_add_region(elsewhere, personas["pathologist"], {"base_version": 0, "kind": "tumour", "vertices": SQUARE})
    assert correction_version(first) == correction_version(second) == 0
    do_add_correction(second, personas["pathologist"], {"base_version": 0, "op": "delete", "detection": 0})
