import json

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from analysis.matching import evaluate, mask_to_points, match_points


def pairs(m):
    return sorted(zip(m.pred_idx.tolist(), m.truth_idx.tolist()))


def test_exact_known_matches():
    pred = [(0, 0), (10, 0), (50, 50)]
    truth = [(1, 0), (10, 2), (100, 100)]
    m = match_points(pred, truth, 3.0)
    assert pairs(m) == [(0, 0), (1, 1)]
    assert m.unmatched_pred.tolist() == [2] and m.unmatched_truth.tolist() == [2]
    assert sorted(m.distances.tolist()) == [1.0, 2.0]


def test_optimal_assignment_beats_greedy_nearest():
    # Greedy would pair pred 1 with truth 0 (distance 1) and strand the rest.
    pred = [(0, 0), (4, 0)]
    truth = [(3, 0), (7, 0)]
    m = match_points(pred, truth, 3.5)
    assert pairs(m) == [(0, 0), (1, 1)]


def test_tie_gives_one_match_and_radius_is_inclusive():
    m = match_points([(0, 0), (10, 0)], [(5, 0)], 5.0)
    assert m.n_matched == 1 and m.distances[0] == 5.0
    assert len(m.unmatched_pred) == 1
    assert match_points([(0, 0)], [(3, 4)], 5.0).n_matched == 1
    assert match_points([(0, 0)], [(3, 4.0001)], 5.0).n_matched == 0


def test_coincident_points_match():
    m = match_points([(7, 7), (7, 7)], [(7, 7)], 1.0)
    assert m.n_matched == 1 and m.distances[0] == 0.0


@pytest.mark.parametrize("pred, truth", [([], []), ([(1, 1)], []), ([], [(1, 1), (2, 2)])])
def test_empty_inputs(pred, truth):
    m = match_points(pred, truth, 4.0)
    assert m.n_matched == 0
    assert len(m.unmatched_pred) == len(pred) and len(m.unmatched_truth) == len(truth)
    e = evaluate(np.asarray(pred, float).reshape(-1, 2), [2] * len(pred),
                 np.asarray(truth, float).reshape(-1, 2), [2] * len(truth), mpp=0.5)
    assert e.detection.tp == 0
    assert e.detection.f1 == (1.0 if not pred and not truth else 0.0)
    json.dumps(e.to_dict())  # NaN (e.g. precision of nothing) becomes null


def _dense_reference(p, t, r):
    d = np.linalg.norm(p[:, None] - t[None], axis=2)
    big = r * (min(len(p), len(t)) + 1) + 1
    cost = np.where(d <= r, d, big)
    i, j = linear_sum_assignment(cost)
    ok = cost[i, j] < big
    return ok.sum(), cost[i, j][ok].sum()


def test_sparse_matching_equals_dense_hungarian_on_crowded_random_points():
    rng = np.random.default_rng(3)
    for _ in range(5):
        p = rng.uniform(0, 60, (80, 2))
        t = rng.uniform(0, 60, (70, 2))
        m = match_points(p, t, 6.0)
        n, total = _dense_reference(p, t, 6.0)
        assert m.n_matched == n
        assert m.distances.sum() == pytest.approx(total)
        assert len(set(m.pred_idx)) == m.n_matched and len(set(m.truth_idx)) == m.n_matched
        assert (m.distances <= 6.0).all()


def test_scales_to_many_points():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 20000, (20000, 2))
    p = t + rng.normal(0, 1.0, t.shape)
    m = match_points(p[::-1], t, 5.0)
    assert m.n_matched >= 19990


def test_evaluate_class_aware_counts():
    truth = np.array([(0, 0), (20, 0), (40, 0), (60, 0), (80, 0)], float)
    truth_l = np.array([1, 1, 2, 2, 2])
    # pred: pos ok, pos called neg, neg ok, neg called pos, (miss 80), extra FP.
    pred = np.array([(1, 0), (21, 0), (41, 0), (61, 0), (200, 200)], float)
    pred_l = np.array([1, 2, 2, 1, 2])
    e = evaluate(pred, pred_l, truth, truth_l, mpp=0.5, radius_um=4.0)
    assert e.radius_px == 8.0
    d = e.detection
    assert (d.tp, d.fp, d.fn) == (4, 1, 1)
    assert d.precision == pytest.approx(0.8) and d.recall == pytest.approx(0.8)
    pos, neg = e.per_class[1], e.per_class[2]
    assert (pos.tp, pos.fp, pos.fn) == (1, 1, 1)
    assert (neg.tp, neg.fp, neg.fn) == (1, 2, 2)
    assert neg.f1 == pytest.approx(2 / 6)
    assert pos.count_abs_error == 0 and neg.count_abs_error == 0
    assert e.positive_pct_truth == pytest.approx(40.0)
    assert e.positive_pct_pred == pytest.approx(40.0)
    assert e.positive_pct_abs_error == pytest.approx(0.0)
    assert e.false_discovery_rate == pytest.approx(0.2)
    # Of the two matched true negatives, one was called positive.
    assert e.false_positive_rate == pytest.approx(0.5)
    assert e.mean_match_distance_um == pytest.approx(0.5)
    out = json.loads(json.dumps(e.to_dict()))
    assert out["per_class"]["1"]["tp"] == 1 and out["detection"]["fn"] == 1


def test_evaluate_radius_is_physical():
    truth, pred = [(0, 0)], [(10, 0)]  # 10 px apart
    assert evaluate(pred, [1], truth, [1], mpp=0.5, radius_um=4.0).detection.tp == 0  # 5 um
    assert evaluate(pred, [1], truth, [1], mpp=0.25, radius_um=4.0).detection.tp == 1  # 2.5 um


def test_mask_to_points_deepliif_convention():
    m = np.zeros((40, 60, 3), np.uint8)
    m[2:8, 2:8] = (255, 0, 0)       # positive, centre (4.5, 4.5)
    m[20:30, 10:30] = (255, 0, 0)   # two positives split by a green outline
    m[20:30, 19:21] = (0, 255, 0)
    m[5:15, 40:50] = (0, 0, 255)    # negative, centre (44.5, 9.5)
    m[35:37, 55:57] = (0, 0, 255)   # 4-px speck: dropped
    m[0, 30] = (255, 0, 0)          # single pixel: dropped
    xy, labels = mask_to_points(m)
    got = sorted(zip(map(tuple, np.round(xy, 2).tolist()), labels.tolist()))
    assert got == sorted([((4.5, 4.5), 1), ((14.0, 24.5), 1), ((25.0, 24.5), 1),
                          ((44.5, 9.5), 2)])
    assert mask_to_points(np.zeros((5, 5, 3), np.uint8))[0].shape == (0, 2)
