"""Agreement and consensus (pure)."""

import pytest

from annotations import review


def test_pair_agreement_f1_labels_and_positive_pct():
    a = [[0, 0, "positive"], [10, 0, "negative"], [20, 0, "negative"], [100, 100, "positive"]]
    b = [[1, 0, "positive"], [10, 1, "positive"], [21, 0, "negative"]]
    out = review.pair_agreement(a, b, radius_px=3)
    assert out["matched"] == 3 and out["f1"] == pytest.approx(6 / 7)
    assert out["label_agreement"] == pytest.approx(2 / 3)
    assert out["positive_pct_a"] == pytest.approx(50) and out["positive_pct_b"] == pytest.approx(200 / 3)
    assert out["positive_pct_difference"] == pytest.approx(200 / 3 - 50)


def test_empty_sets_agree_perfectly_and_one_empty_set_not_at_all():
    assert review.pair_agreement([], [], 3)["f1"] == 1.0
    out = review.pair_agreement([[0, 0, "positive"]], [], 3)
    assert out["f1"] == 0.0 and out["positive_pct_difference"] is None


def test_agreement_over_three_annotators():
    sets = {"a": [[0, 0, "positive"]], "b": [[1, 0, "positive"]], "c": [[50, 50, "negative"]]}
    out = review.agreement(sets, 3)
    assert [(p["a"], p["b"]) for p in out["pairs"]] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert out["mean_f1"] == pytest.approx(1 / 3) and out["max_positive_pct_difference"] == pytest.approx(100)


def test_consensus_keeps_majority_points_and_majority_labels():
    sets = {
        "a": [[0, 0, "positive"], [50, 50, "negative"], [200, 200, "positive"]],
        "b": [[2, 0, "positive"], [51, 50, "positive"]],
        "c": [[1, 1, "negative"], [49, 50, "negative"], [400, 400, "negative"]],
    }
    out = review.consensus(sets, radius_px=4)
    assert out["min_votes"] == 2 and out["clusters"] == 4
    assert out["points"] == [[1.0, 0.33, "positive"], [50.0, 50.0, "negative"]]


def test_consensus_tie_is_uncertain_not_positive_and_is_reported():
    """A 1-1 (or 2-2) label split is no majority: it was made "positive" by the label order, which pushed
    every disputed nucleus into the positive share. It is now returned apart as uncertain, with its votes."""
    out = review.consensus({"a": [[0, 0, "negative"]], "b": [[1, 0, "positive"]]}, 3)
    assert out["points"] == [] and out["label_ties"] == 1
    assert out["uncertain"] == [{"x": 0.5, "y": 0.0, "votes": {"negative": 1, "positive": 1}, "found_by": 2}]
    four = {"a": [[0, 0, "negative"]], "b": [[1, 0, "positive"]], "c": [[2, 0, "negative"]], "d": [[0, 1, "positive"]]}
    out = review.consensus(four, 3)
    assert out["points"] == [] and len(out["uncertain"]) == 1 and out["uncertain"][0]["found_by"] == 4


def test_consensus_one_point_per_annotator_per_cluster():
    # a's two close points cannot both join b's one point
    out = review.consensus({"a": [[0, 0, "positive"], [2, 0, "positive"]], "b": [[1, 0, "positive"]]}, 3)
    assert len(out["points"]) == 1
