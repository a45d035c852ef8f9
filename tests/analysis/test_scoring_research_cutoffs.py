"""Research use and the near-cut-off check follow what the platform computes and the case's own cut-offs:
an approved CPS table clears no research flag (CPS is never computed without immune-cell labels), and a
case with no cut-off table for its clone and indication gets no near-cut-off warning (it used to be read
against lung 22C3's 1 % and 50 %), but a note that no approved cut-offs apply."""

import numpy as np

from analysis.scoring import NEAR_CUTOFF, NO_CUTOFFS, interval_text, positive_pct_interval, score_summary

TABLE_22C3 = {"name": "22C3 / NSCLC / TPS", "approved": True, "cutoffs": [
    {"lower": 0, "label": "TPS < 1%"}, {"lower": 1, "label": "TPS 1-49%"}, {"lower": 50, "label": "TPS >= 50%"}]}
TABLE_SP263 = {"name": "SP263 / NSCLC / TPS", "approved": True, "cutoffs": [
    {"lower": 0, "label": "TC < 1%"}, {"lower": 1, "label": "TC 1-24%"}, {"lower": 25, "label": "TC 25-49%"},
    {"lower": 50, "label": "TC >= 50%"}]}
CPS_APPROVED = {"name": "22C3 / breast / CPS", "approved": True, "cutoffs": [
    {"lower": 0, "label": "CPS < 10"}, {"lower": 10, "label": "CPS >= 10"}]}


def near(pct_low_block, pct_high_block):
    """A 95 % interval around the mean of 10 blocks of each of the two positive fractions (of 100 cells)."""
    pos = np.r_[np.full(10, pct_low_block), np.full(10, pct_high_block)]
    return positive_pct_interval(pos, np.full(20, 100) - pos)


def test_an_approved_cps_table_clears_no_research_flag():
    counts = {"positive": 400, "negative": 600}
    s = score_summary(counts, tps_table=None, cps_table=CPS_APPROVED)
    assert s["cps"]["value"] is None and s["cps"]["approved"]
    assert s["research_use"] and s["tps"]["category"] is None
    # Once immune cells are counted, the approved CPS table is a clinical category.
    s = score_summary(counts, cps_table=CPS_APPROVED, positive_immune=200)
    assert s["cps"]["status"] == "reportable" and not s["research_use"]
    # An approved TPS table: not research use, also for a specimen too small to score (it says insufficient).
    assert not score_summary(counts, tps_table=TABLE_22C3)["research_use"]
    assert not score_summary({"positive": 5, "negative": 5}, tps_table=TABLE_22C3)["research_use"]


def test_no_cut_off_table_gives_no_warning_but_says_why():
    iv = near(46, 54)  # about 50 %, the interval crosses 50
    s = score_summary({"positive": 1000, "negative": 1000}, tps_table=None, tps_interval=iv)
    assert not s["tps"]["near_cutoff"] and s["tps"]["cutoffs_crossed"] == [] and s["tps"]["uncertainty"] == ""
    assert s["tps"]["cutoff_note"] == NO_CUTOFFS and NO_CUTOFFS in interval_text(s["tps"])
    assert "50 %" not in interval_text(s["tps"]).split(";")[-1]
    with_table = score_summary({"positive": 1000, "negative": 1000}, tps_table=TABLE_22C3, tps_interval=iv)
    assert with_table["tps"]["near_cutoff"] and "cutoff_note" not in with_table["tps"]


def test_sp263_is_checked_against_its_own_25_percent():
    iv = near(22, 28)  # about 25 %: near SP263's 25 %, near nothing of 22C3's
    s = score_summary({"positive": 500, "negative": 1500}, tps_table=TABLE_SP263, tps_interval=iv)
    assert s["tps"]["near_cutoff"] and s["tps"]["cutoffs_crossed"] == [25.0]
    assert s["tps"]["uncertainty"].startswith(NEAR_CUTOFF)
