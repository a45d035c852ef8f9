"""Scores by indication and assay: TPS/CPS, categories from cut-off tables, adequacy, research use."""

import pytest

from analysis.scoring import (
    CPS_UNAVAILABLE,
    INSUFFICIENT,
    RESEARCH_USE,
    categorize,
    cps,
    score_summary,
    tps,
    tps_category,
)

TABLE_22C3 = {"name": "22C3 / NSCLC / TPS", "approved": True, "source": "KEYTRUDA label",
              "cutoffs": [{"lower": 0, "label": "TPS < 1%"}, {"lower": 1, "label": "TPS 1-49%"},
                          {"lower": 50, "label": "TPS >= 50%"}]}
TABLE_SP263 = {"name": "SP263 / NSCLC / TPS", "approved": True, "cutoffs": [
    {"lower": 0, "label": "TC < 1%"}, {"lower": 1, "label": "TC 1-24%"}, {"lower": 25, "label": "TC 25-49%"},
    {"lower": 50, "label": "TC >= 50%"}]}


@pytest.mark.parametrize("value,label", [(0, "TPS < 1%"), (0.99, "TPS < 1%"), (1, "TPS 1-49%"), (49.99, "TPS 1-49%"),
                                         (50, "TPS >= 50%"), (100, "TPS >= 50%"), (None, None)])
def test_existing_tps_category_keeps_the_22c3_boundaries(value, label):
    assert tps_category(value) == label
    assert tps_category(value, "22C3") == label


@pytest.mark.parametrize("value,label", [(0.5, "TC < 1%"), (1, "TC 1-24%"), (24.9, "TC 1-24%"), (25, "TC 25-49%"),
                                         (50, "TC >= 50%")])
def test_sp263_cutoffs(value, label):
    assert categorize(value, TABLE_SP263["cutoffs"]) == label


def test_categorize_accepts_unordered_pairs():
    assert categorize(30, [(50, "high"), (0, "low"), (1, "mid")]) == "mid"


def test_tps_and_cps_formulas():
    assert tps(1, 3) == 25.0 and tps(0, 0) is None
    assert cps(30, 20, 100) == 50.0
    assert cps(90, 60, 100) == 100.0  # capped
    assert cps(30, None, 100) is None  # immune cells not labelled
    assert cps(0, 0, 0) is None


def test_summary_with_an_approved_table():
    s = score_summary({"positive": 600, "negative": 400, "other": 3}, tps_table=TABLE_22C3)
    assert s["tps"]["value"] == 60.0 and s["tps"]["category"] == "TPS >= 50%"
    assert s["tps"]["status"] == "reportable" and s["tps"]["approved"] and not s["research_use"]
    assert s["adequacy"]["adequate"] and s["viable_tumour_cells"] == 1000
    assert s["cps"]["value"] is None and s["cps"]["status"] == CPS_UNAVAILABLE
    assert s["tps"]["cutoffs"][1] == {"lower": 1.0, "label": "TPS 1-49%"}


def test_fewer_than_100_viable_tumour_cells_is_insufficient():
    s = score_summary({"positive": 60, "negative": 39}, tps_table=TABLE_22C3)
    assert not s["adequacy"]["adequate"] and INSUFFICIENT in s["adequacy"]["statement"]
    assert s["tps"]["category"] is None and s["tps"]["status"] == INSUFFICIENT
    assert score_summary({"positive": 60, "negative": 40}, tps_table=TABLE_22C3)["adequacy"]["adequate"]


def test_no_or_unapproved_table_is_research_use():
    for table in (None, {**TABLE_22C3, "approved": False}):
        s = score_summary({"positive": 600, "negative": 400}, tps_table=table)
        assert s["research_use"] and s["tps"]["category"] is None
        assert s["tps"]["status"] == RESEARCH_USE and s["tps"]["value"] == 60.0
