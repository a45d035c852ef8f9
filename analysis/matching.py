"""Point-based evaluation of cell detections against ground truth.

A detection matches a true cell when their centres are within ``radius``
(inclusive) and the pair is part of an optimal one-to-one assignment: among
all assignments with the maximum number of pairs, the one with the least total
distance (Hungarian algorithm).  Greedy nearest-neighbour matching would be
order dependent and can lose pairs in crowded clusters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage, sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from skimage.measure import label as cc_label

from analysis.labels import NEGATIVE, POSITIVE


@dataclass
class Match:
    pred_idx: np.ndarray        # (K,) indices into pred of matched pairs
    truth_idx: np.ndarray       # (K,) indices into truth, same order
    distances: np.ndarray       # (K,) pair distances, px
    unmatched_pred: np.ndarray  # indices of false positives
    unmatched_truth: np.ndarray  # indices of false negatives

    @property
    def n_matched(self) -> int:
        return int(self.pred_idx.size)


def _as_xy(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(-1, 2) if a.size else np.zeros((0, 2))


def match_points(pred_xy, truth_xy, radius_px: float) -> Match:
    """One-to-one matching of predicted to true points within ``radius_px``."""
    p, t = _as_xy(pred_xy), _as_xy(truth_xy)
    empty = np.zeros(0, np.int64)
    if len(p) == 0 or len(t) == 0:
        return Match(empty, empty, np.zeros(0), np.arange(len(p)), np.arange(len(t)))

    # Sparse candidate pairs only: O(N log N) instead of an N x M matrix.
    # The query radius is padded a hair; the exact <= test is done below.
    near = cKDTree(p).query_ball_tree(cKDTree(t), radius_px * (1 + 1e-9) + 1e-9)
    pi = np.fromiter((i for i, js in enumerate(near) for _ in js), np.int64)
    ti = np.fromiter((j for js in near for j in js), np.int64)
    d = np.linalg.norm(p[pi] - t[ti], axis=1) if pi.size else np.zeros(0)
    keep = d <= radius_px
    pi, ti, d = pi[keep], ti[keep], d[keep]

    # Independent sub-problems = connected components of the bipartite
    # candidate graph; each is tiny, so Hungarian on each stays cheap even for
    # tens of thousands of cells.
    n_p = len(p)
    graph = sparse.coo_matrix((np.ones_like(d), (pi, n_p + ti)), shape=(n_p + len(t),) * 2)
    _, comp = connected_components(graph, directed=False)
    pairs_p, pairs_t, pairs_d = [], [], []
    order = np.argsort(comp[pi], kind="stable")
    pi, ti, d = pi[order], ti[order], d[order]
    bounds = np.flatnonzero(np.diff(comp[pi])) + 1
    for sl_p, sl_t, sl_d in zip(np.split(pi, bounds), np.split(ti, bounds), np.split(d, bounds)):
        if sl_p.size == 0:
            continue
        up, ip = np.unique(sl_p, return_inverse=True)
        ut, it = np.unique(sl_t, return_inverse=True)
        # Infeasible pairs cost more than any complete feasible assignment,
        # so the solver first maximises the number of pairs, then minimises
        # total distance.
        big = radius_px * (min(len(up), len(ut)) + 1) + 1.0
        cost = np.full((len(up), len(ut)), big)
        cost[ip, it] = sl_d
        r, c = linear_sum_assignment(cost)
        ok = cost[r, c] < big
        pairs_p.append(up[r[ok]])
        pairs_t.append(ut[c[ok]])
        pairs_d.append(cost[r[ok], c[ok]])

    mp = np.concatenate(pairs_p) if pairs_p else empty
    mt = np.concatenate(pairs_t) if pairs_t else empty
    md = np.concatenate(pairs_d) if pairs_d else np.zeros(0)
    return Match(mp, mt, md, np.setdiff1d(np.arange(len(p)), mp),
                 np.setdiff1d(np.arange(len(t)), mt))


def _nan_to_none(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def _ratio(a, b) -> float:
    return a / b if b else float("nan")


@dataclass
class ClassMetrics:
    tp: int
    fp: int
    fn: int
    n_pred: int
    n_truth: int
    precision: float
    recall: float
    f1: float
    count_abs_error: int

    @classmethod
    def from_counts(cls, tp, n_pred, n_truth):
        fp, fn = n_pred - tp, n_truth - tp
        p, r = _ratio(tp, n_pred), _ratio(tp, n_truth)
        # F1 = 2TP / (2TP + FP + FN): defined (0) even when TP == 0, and 1.0
        # when both sets are empty (nothing to find, nothing claimed).
        f1 = _ratio(2 * tp, 2 * tp + fp + fn) if (n_pred or n_truth) else 1.0
        return cls(int(tp), int(fp), int(fn), int(n_pred), int(n_truth), p, r, f1,
                   int(abs(n_pred - n_truth)))

    def to_dict(self) -> dict:
        return {k: _nan_to_none(v) for k, v in asdict(self).items()}


@dataclass
class Evaluation:
    detection: ClassMetrics          # class-agnostic
    per_class: dict                  # {class label: ClassMetrics}, class-aware
    positive_pct_pred: float         # 100 * positives / all, predictions
    positive_pct_truth: float
    positive_pct_abs_error: float    # percentage points
    false_discovery_rate: float      # unmatched detections / detections
    false_positive_rate: float       # truth-negative cells called positive / matched truth-negatives
    radius_px: float
    mpp: float
    mean_match_distance_um: float
    match: Match = field(repr=False, default=None)
    # The labels of each matched pair (prediction, truth): match.pred_idx indexes the predictions left
    # after ignore zones, not those passed in, so callers read the pairs' classes here.
    matched_pred_labels: np.ndarray = field(repr=False, default=None)
    matched_truth_labels: np.ndarray = field(repr=False, default=None)

    def to_dict(self) -> dict:
        out = {k: _nan_to_none(getattr(self, k)) for k in (
            "positive_pct_pred", "positive_pct_truth", "positive_pct_abs_error",
            "false_discovery_rate", "false_positive_rate", "radius_px", "mpp",
            "mean_match_distance_um")}
        out["detection"] = self.detection.to_dict()
        out["per_class"] = {str(k): v.to_dict() for k, v in self.per_class.items()}
        return out


def _positive_pct(labels) -> float:
    labels = np.asarray(labels)
    n = np.isin(labels, (POSITIVE, NEGATIVE)).sum()
    return 100.0 * (labels == POSITIVE).sum() / n if n else float("nan")


def ignored_predictions(pred_xy, truth_xy, ignore_xy, radius_px: float) -> np.ndarray:
    """Mask of detections that match no true cell but lie within the radius of an ignore point.

    Ignore points mark labelled nuclei that are not tumour cells (lymphocytes):
    a detection there is neither a tumour cell found nor a false one, so it is
    left out of the metrics; one that matches a tumour cell is always kept.
    """
    p, ig = _as_xy(pred_xy), _as_xy(ignore_xy)
    out = np.zeros(len(p), bool)
    if len(p) == 0 or len(ig) == 0:
        return out
    unmatched = match_points(p, truth_xy, radius_px).unmatched_pred
    if unmatched.size:
        near, _ = cKDTree(ig).query(p[unmatched], distance_upper_bound=radius_px * (1 + 1e-9) + 1e-9)
        out[unmatched[np.isfinite(near)]] = True
    return out


def evaluate(pred_xy, pred_labels, truth_xy, truth_labels, mpp: float,
             radius_um: float = 4.0, classes=(POSITIVE, NEGATIVE), ignore_xy=None) -> Evaluation:
    """Detection and per-class metrics; a cell is matched within ``radius_um``.

    Class-aware counting: a matched pair is a TP for class c only when both
    sides are class c; so a mis-classified match is an FP of the predicted
    class and an FN of the true class.  ``ignore_xy``: labelled non-tumour
    nuclei; unmatched detections on them are dropped (ignored_predictions).
    """
    pl, tl = np.asarray(pred_labels).ravel(), np.asarray(truth_labels).ravel()
    radius_px = radius_um / mpp
    if ignore_xy is not None and len(ignore_xy):
        keep = ~ignored_predictions(pred_xy, truth_xy, ignore_xy, radius_px)
        pred_xy, pl = _as_xy(pred_xy)[keep], pl[keep]
    m = match_points(pred_xy, truth_xy, radius_px)
    det = ClassMetrics.from_counts(m.n_matched, len(pl), len(tl))
    mpl, mtl = pl[m.pred_idx], tl[m.truth_idx]
    classes = sorted(set(classes) | set(np.unique(pl).tolist()) | set(np.unique(tl).tolist()))
    per_class = {int(c): ClassMetrics.from_counts(int(((mpl == c) & (mtl == c)).sum()),
                                                  int((pl == c).sum()), int((tl == c).sum()))
                 for c in classes}
    pp, tp = _positive_pct(pl), _positive_pct(tl)
    neg = mtl == NEGATIVE
    return Evaluation(
        detection=det, per_class=per_class,
        positive_pct_pred=pp, positive_pct_truth=tp, positive_pct_abs_error=abs(pp - tp),
        false_discovery_rate=_ratio(det.fp, det.n_pred),
        false_positive_rate=_ratio(int((mpl[neg] == POSITIVE).sum()), int(neg.sum())),
        radius_px=radius_px, mpp=mpp,
        mean_match_distance_um=float(m.distances.mean() * mpp) if m.n_matched else float("nan"),
        match=m, matched_pred_labels=mpl, matched_truth_labels=mtl,
    )


def mask_to_points(mask_rgb, min_area_px: int = 10):
    """DeepLIIF-style label mask -> ((N, 2) float xy, (N,) int labels).

    Red pixels are positive nuclei, blue negative (green marks outlines and is
    ignored).  Each 4-connected component of one colour is a cell; components
    smaller than ``min_area_px`` (anti-aliasing specks) are dropped.
    """
    rgb = np.asarray(mask_rgb)[..., :3].astype(np.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    xy, labels = [], []
    for cls, on in ((POSITIVE, (r > 127) & (g < 128) & (b < 128)),
                    (NEGATIVE, (b > 127) & (r < 128) & (g < 128))):
        lab = cc_label(on, connectivity=1)
        n = int(lab.max())
        if n == 0:
            continue
        idx = np.arange(1, n + 1)
        area = ndimage.sum_labels(np.ones_like(lab), lab, idx)
        idx = idx[area >= min_area_px]
        if idx.size == 0:
            continue
        cy_cx = np.asarray(ndimage.center_of_mass(on, lab, idx), float).reshape(-1, 2)
        xy.append(cy_cx[:, ::-1])
        labels.append(np.full(len(idx), cls, np.int64))
    if not xy:
        return np.zeros((0, 2)), np.zeros(0, np.int64)
    return np.concatenate(xy), np.concatenate(labels)
