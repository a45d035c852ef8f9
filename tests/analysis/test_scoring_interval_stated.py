"""What a summarised TPS states about its 95 % interval (analysis.scoring.score_summary)."""

import pytest

from analysis.scoring import (
    INSUFFICIENT,
    NEAR_CUTOFF,
    Interval,
    cutoffs_crossed,
    interval_range,
    interval_text,
    printed_bounds,
    score_summary,
)

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


# --- the interval as printed: rounded outward, and flagged as printed -------------------------------

def summarised(low, high, sampling=(45.0, 48.0), positive=470):
    iv = Interval(low, high, *sampling, 1.96, 40)
    return score_summary({"positive": positive, "negative": 1000 - positive}, tps_table=TABLE, tps_interval=iv)["tps"]


@pytest.mark.parametrize("low,high,printed", [
    (44.31, 49.96, (44.3, 50.0)),   # the reviewer's: the upper bound printed 50.0 was not flagged
    (49.96, 55.0, (49.9, 55.0)),    # the reviewer's: printed 50.0-55.0 and said it "crosses 50 %"
    (44.3, 49.9, (44.3, 49.9)),     # float error (44.3 is 44.29999...) does not widen an exact bound
    (0.0, 100.0, (0.0, 100.0)),
    (0.04, 99.96, (0.0, 100.0)),
])
def test_printed_bounds_round_outward(low, high, printed):
    assert printed_bounds(low, high) == printed
    assert interval_range(low, high) == f"{printed[0]:.1f}-{printed[1]:.1f}"


def test_an_upper_bound_printed_at_the_cutoff_is_flagged():
    tps = summarised(44.31, 49.96)
    assert tps["near_cutoff"] and tps["cutoffs_crossed"] == [50.0]
    assert tps["uncertainty"] == f"{NEAR_CUTOFF} (95 % interval 44.3-50.0 % reaches 50 %)"
    assert interval_text(tps).startswith(f"{tps['uncertainty']}. 95 % interval 44.3-50.0 % (sampling over 40 "
                                         "tissue blocks 45.0-48.0 %")


def test_a_lower_bound_just_under_the_cutoff_prints_under_it():
    tps = summarised(49.96, 55.0, sampling=(50.04, 53.0), positive=530)
    assert tps["near_cutoff"] and tps["cutoffs_crossed"] == [50.0]
    assert tps["uncertainty"] == f"{NEAR_CUTOFF} (95 % interval 49.9-55.0 % crosses 50 %)"
    assert "95 % interval 49.9-55.0 % (sampling over 40 tissue blocks 50.0-53.0 %" in interval_text(tps)


def test_a_bound_exactly_at_the_cutoff_is_flagged_and_one_a_tenth_away_is_not():
    assert summarised(50.0, 55.0, positive=530)["uncertainty"].endswith("50.0-55.0 % reaches 50 %)")
    assert summarised(45.0, 50.0)["cutoffs_crossed"] == [50.0]
    for low, high in ((50.1, 55.0), (44.3, 49.9)):
        tps = summarised(low, high, positive=530 if low > 50 else 470)
        assert not tps["near_cutoff"] and tps["uncertainty"] == "" and not interval_text(tps).startswith(NEAR_CUTOFF)


def test_the_flag_agrees_with_the_printed_interval_for_every_bound():
    """Over a grid of bounds around 1 % and 50 %: flagged exactly when the printed interval reaches a cut-off."""
    for centre in (1.0, 50.0):
        for low_off in range(-30, 31):
            for width in (1, 7, 25, 40):
                low = max(0.0, centre + low_off / 100)
                high = min(100.0, low + width / 100)
                shown_low, shown_high = (float(x) for x in interval_range(low, high).split("-"))
                expected = [c for c in (1.0, 50.0) if shown_low <= c <= shown_high]
                assert cutoffs_crossed(Interval(low, high, low, high, 0.0, 1), TABLE["cutoffs"]) == expected
