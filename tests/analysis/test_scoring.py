"""Scores by indication and assay: TPS/CPS, categories from cut-off tables, adequacy, research use."""

import numpy as np
import pytest

from analysis.scoring import (
    NEAR_CUTOFF,
    CPS_UNAVAILABLE,
    block_counts,
    cutoffs_crossed,
    positive_pct_interval,
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
def test_tps_category_without_a_clone_and_for_22c3_uses_the_22c3_boundaries(value, label):
    assert tps_category(value) == label
    assert tps_category(value, "22C3") == label


@pytest.mark.parametrize("value,label", [(0.5, "TC < 1%"), (1, "TC 1-24%"), (24.9, "TC 1-24%"), (25, "TC 25-49%"),
                                         (49.9, "TC 25-49%"), (50, "TC >= 50%")])
def test_tps_category_uses_the_clones_cutoffs(value, label):
    assert tps_category(value, "SP263") == label


@pytest.mark.parametrize("clone", ["SP142", "28-8", "other"])
def test_tps_category_of_a_clone_without_built_in_cutoffs_is_none(clone):
    assert tps_category(30.0, clone) is None


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


# --- uncertainty ------------------------------------------------------------------------------


def test_block_counts_group_cells_by_square_blocks():
    xy = np.array([[10, 10], [20, 20], [150, 10], [160, 15], [170, 20]], float)
    labels = np.array([1, 2, 1, 1, 3])  # label 3 (not tumour) is not counted
    pos, neg = block_counts(xy, labels, block_px=100)
    assert sorted(zip(pos.tolist(), neg.tolist())) == [(1, 1), (2, 0)]


def test_interval_is_reproducible_and_holds_the_value():
    rng = np.random.default_rng(3)
    pos, neg = rng.integers(0, 50, 200), rng.integers(0, 50, 200)
    a, b = positive_pct_interval(pos, neg), positive_pct_interval(pos, neg)
    value = 100 * pos.sum() / (pos.sum() + neg.sum())
    assert a == b and a.low < value < a.high and a.blocks == 200
    assert a.high - a.low < 6  # 200 blocks of ~50 cells: a narrow interval


def test_heterogeneous_blocks_widen_the_interval():
    # Same pooled 50 %, but half the blocks all positive and half all negative: less certain
    # than 40 alike blocks, whose interval is the binomial (Wilson) one over their 800 cells.
    even = positive_pct_interval(np.full(40, 10), np.full(40, 10))
    split = positive_pct_interval(np.r_[np.full(20, 20), np.zeros(20)], np.r_[np.zeros(20), np.full(20, 20)])
    assert even.low == pytest.approx(46.5, abs=0.2) and even.high == pytest.approx(53.5, abs=0.2)
    assert (split.high - split.low) > 3 * (even.high - even.low)


def test_detector_error_widens_both_sides_and_clips_to_0_100():
    base = positive_pct_interval(np.full(30, 1), np.full(30, 99))
    wide = positive_pct_interval(np.full(30, 1), np.full(30, 99), detector_error_pp=4.0)
    assert wide.high == pytest.approx(base.high + 4) and wide.low == 0.0
    assert positive_pct_interval([0], [0]) is None


def test_one_block_uses_wilson():
    iv = positive_pct_interval([5], [95])
    assert 1.5 < iv.low < 3 and 10 < iv.high < 12  # Wilson 95 % for 5/100: 2.2-11.2 %


def test_near_cutoff_flag_in_the_summary():
    # 52 % with an interval reaching below 50 %: near the 22C3 high-expression cut-off.
    iv = positive_pct_interval(np.r_[np.full(10, 30), np.full(10, 22)], np.full(20, 24), detector_error_pp=3.0)
    s = score_summary({"positive": 520, "negative": 480}, tps_table=TABLE_22C3, tps_interval=iv)
    assert s["tps"]["near_cutoff"] and s["tps"]["cutoffs_crossed"] == [50.0]
    assert s["tps"]["uncertainty"].startswith(NEAR_CUTOFF)
    far = positive_pct_interval(np.full(20, 30), np.full(20, 70))
    s = score_summary({"positive": 600, "negative": 1400}, tps_table=TABLE_22C3, tps_interval=far)
    assert not s["tps"]["near_cutoff"] and s["tps"]["uncertainty"] == ""
    assert s["tps"]["interval"]["low"] < 30 < s["tps"]["interval"]["high"]


def test_cutoffs_crossed_ignores_the_zero_bound():
    iv = positive_pct_interval([0, 1, 0, 2], [100, 100, 100, 100])
    assert cutoffs_crossed(iv, [(0.0, "<1"), (1.0, "1-49"), (50.0, ">=50")]) == [1.0]
    assert cutoffs_crossed(None, [(1.0, "x")]) == []


def test_many_blocks_use_the_bootstraps_normal_limit(monkeypatch):
    import analysis.scoring as scoring

    rng = np.random.default_rng(7)
    pos, neg = rng.integers(0, 60, 600), rng.integers(0, 60, 600)
    delta = positive_pct_interval(pos, neg)  # 600 blocks >= BOOTSTRAP_MAX_BLOCKS: no draws
    monkeypatch.setattr(scoring, "BOOTSTRAP_MAX_BLOCKS", 10**9)
    boot = positive_pct_interval(pos, neg)
    assert delta.sampling_low == pytest.approx(boot.sampling_low, abs=0.3)
    assert delta.sampling_high == pytest.approx(boot.sampling_high, abs=0.3)


@pytest.mark.parametrize("positive,negative,value,label", [
    (12499, 12501, 49.99, "TPS 1-49%"),  # 49.996 %: stated 49.99 (cut, not rounded to 50.00): below 50, as counted
    (249, 24751, 0.99, "TPS < 1%"),  # 0.996 %
    (12497, 12503, 49.98, "TPS 1-49%"),  # 49.988 %
    (500, 500, 50.0, "TPS >= 50%"),  # exactly 50 %
    (290, 710, 29.0, "TPS 1-49%"),  # 29 %, whatever the float error of 100 * 290 / 1000
])
def test_the_category_is_that_of_the_value_as_stated(positive, negative, value, label):
    part = score_summary({"positive": positive, "negative": negative}, tps_table=TABLE_22C3)["tps"]
    assert (part["value"], part["category"]) == (value, label)
    assert tps_category(100 * positive / (positive + negative)) == label


def test_the_sampling_limits_stay_within_0_and_100_percent():
    one_positive = positive_pct_interval(np.r_[1, np.zeros(599)], np.r_[0, np.ones(599)])
    all_but_one = positive_pct_interval(np.r_[0, np.ones(599)], np.r_[1, np.zeros(599)])
    assert one_positive.blocks == 600 and 0.0 <= one_positive.sampling_low < one_positive.sampling_high
    assert all_but_one.sampling_high <= 100.0 and all_but_one.sampling_low < 100.0


def test_a_value_below_the_tables_lowest_cut_off_gets_no_category():
    """A table without a 0 row called 0 % "TPS 1-49%" (its lowest category): a positive call."""
    from analysis.scoring import score_summary

    assert categorize(0.0, [(1, "TPS 1-49%"), (50, "TPS >= 50%")]) is None
    table = {"name": "edited", "approved": True, "cutoffs": [{"lower": 1, "label": "TPS 1-49%"},
                                                              {"lower": 50, "label": "TPS >= 50%"}]}
    tps = score_summary({"positive": 0, "negative": 500, "other": 0}, tps_table=table)["tps"]
    assert tps["value"] == 0.0 and tps["category"] is None and "below the lowest cut-off" in tps["status"]
