"""What a summarised TPS states about its 95 % interval (analysis.scoring.score_summary)."""

from analysis.scoring import INSUFFICIENT, Interval, interval_text, score_summary

TABLE = {"name": "t", "approved": True, "cutoffs": [{"lower": 0, "label": "<1"}, {"lower": 1, "label": "1-49"},
                                                     {"lower": 50, "label": ">=50"}]}


def test_an_inadequate_specimen_has_no_interval_and_no_near_cutoff_flag():
    # 26 of 60 cells: the value is withheld, and an interval crossing 50 % was still flagged beside it.
    wide = Interval(20.36, 65.9, 30.36, 55.9, 10.0, 32)
    for table in (TABLE, None):
        tps = score_summary({"positive": 26, "negative": 34}, tps_table=table, tps_interval=wide)["tps"]
        assert tps["status"] == INSUFFICIENT and tps["category"] is None
        assert tps["interval"] is None and tps["near_cutoff"] is False
        assert tps["cutoffs_crossed"] == [] and tps["uncertainty"] == ""
        assert interval_text(tps) == ""
    # 100 cells are enough: the same interval is stated and flagged.
    tps = score_summary({"positive": 43, "negative": 57}, tps_table=TABLE, tps_interval=wide)["tps"]
    assert tps["interval"]["low"] == 20.36 and tps["near_cutoff"] and tps["cutoffs_crossed"] == [50.0]
