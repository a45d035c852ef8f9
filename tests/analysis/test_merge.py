import numpy as np
import pytest

from analysis.merge import counts, merge_detections, tps
from analysis.nms import greedy_keep as dedupe_keep


def batch(points, labels, scores):
    return np.asarray(points, np.float32), np.asarray(labels, np.int8), np.asarray(scores, np.float32)


def brute_force_greedy(xy, scores, radius):
    keep = np.zeros(len(scores), bool)
    for i in np.argsort(-scores, kind="stable"):
        if not any(np.hypot(*(xy[i] - xy[j])) < radius for j in np.flatnonzero(keep)):
            keep[i] = True
    return keep


def test_duplicates_from_an_overlap_are_merged_and_far_points_kept():
    left = batch([[100, 100], [500, 40], [250.0, 300]], [1, 2, 1], [0.9, 0.8, 0.4])
    right = batch([[100.7, 99.6], [900, 900], [251.0, 300.5]], [2, 1, 2], [0.6, 0.7, 0.95])
    merged = merge_detections([left, right], dedupe_radius_px=3.0)
    assert merged.n_input == 6 and merged.n_duplicates == 2
    got = {(round(float(x), 1), round(float(y), 1), int(lab)) for (x, y), lab in zip(merged.xy, merged.labels)}
    # Of each pair the better-scored point survives, with its own label.
    assert got == {(100, 100, 1), (500, 40, 2), (900, 900, 1), (251, 300.5, 2)}
    assert merged.xy.dtype == np.float32 and merged.labels.dtype == np.int8 and merged.scores.dtype == np.float32


def test_greedy_by_score_not_chained_clustering():
    # B is within the radius of both A and C, but C is not within it of A: A drops B, and
    # C survives because B was dropped before it could suppress anything.
    xy = np.array([[0, 0], [3, 0], [6, 0]], np.float32)
    assert dedupe_keep(xy, np.array([0.9, 0.8, 0.7]), 4.0).tolist() == [True, False, True]
    assert dedupe_keep(xy, np.array([0.7, 0.9, 0.8]), 4.0).tolist() == [False, True, False]


def test_matches_brute_force_greedy_and_is_deterministic():
    rng = np.random.default_rng(4)
    for trial in range(10):
        xy = rng.uniform(0, 80, (400, 2)).astype(np.float32)
        scores = rng.integers(0, 4, 400).astype(np.float32)  # many ties: first input wins
        keep = dedupe_keep(xy, scores, 3.5)
        assert np.array_equal(keep, brute_force_greedy(xy, scores, 3.5)), trial
    labels = rng.integers(1, 3, 400).astype(np.int8)
    one = merge_detections([(xy[:200], labels[:200], scores[:200]), (xy[200:], labels[200:], scores[200:])], 3.5)
    again = merge_detections([(xy[:200], labels[:200], scores[:200]), (xy[200:], labels[200:], scores[200:])], 3.5)
    assert np.array_equal(one.xy, again.xy) and np.array_equal(one.labels, again.labels)


def test_empty_and_degenerate_inputs():
    empty = merge_detections([], 3.0)
    assert len(empty) == 0 and empty.xy.shape == (0, 2)
    merged = merge_detections([batch(np.zeros((0, 2)), [], []), batch([[1, 1]], [1], [0.5])], 3.0)
    assert len(merged) == 1 and merged.n_duplicates == 0
    same = batch([[5, 5], [5, 5]], [1, 2], [0.5, 0.5])
    assert merge_detections([same], 0.0).n_duplicates == 0  # radius 0: nothing is a duplicate
    with pytest.raises(ValueError):
        merge_detections([batch([[1, 1]], [1, 2], [0.5])], 3.0)


def test_counts_and_tps():
    c = counts(np.array([1, 1, 2, 0, 3], np.int8))
    assert c == {"positive": 2, "negative": 1, "other": 2}
    assert tps(c["positive"], c["negative"]) == pytest.approx(200 / 3)
    assert tps(0, 0) is None and counts(np.zeros(0, np.int8)) == {"positive": 0, "negative": 0, "other": 0}
    assert tps(0, 5) == 0.0 and tps(5, 0) == 100.0 and tps(1, 3) == 25.0


def test_a_point_exactly_at_the_radius_is_not_a_duplicate():
    # The one NMS rule (analysis.nms): only a kept point closer than the radius suppresses, as the
    # detector's own NMS decides; the merge used to drop a point at exactly the radius too.
    merged = merge_detections([batch([[0, 0]], [1], [0.9]), batch([[3, 0]], [2], [0.8])], dedupe_radius_px=3.0)
    assert merged.n_duplicates == 0 and len(merged) == 2
