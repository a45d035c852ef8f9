"""Inter-annotator agreement and consensus of point sets (pure functions, pixels in, numbers out)."""

from __future__ import annotations

from itertools import combinations

import numpy as np

from analysis.matching import match_points


def _xy(points) -> np.ndarray:
    return np.asarray([[p[0], p[1]] for p in points], np.float64).reshape(-1, 2)


def positive_pct(points) -> float | None:
    pos = sum(1 for p in points if p[2] == "positive")
    neg = sum(1 for p in points if p[2] == "negative")
    return 100.0 * pos / (pos + neg) if pos + neg else None


def pair_agreement(a, b, radius_px: float) -> dict:
    """Matched-point F1 (one-to-one within radius), label agreement of matched pairs, positive-% difference."""
    m = match_points(_xy(a), _xy(b), radius_px)
    n_a, n_b = len(a), len(b)
    f1 = 2 * m.n_matched / (n_a + n_b) if n_a + n_b else 1.0
    same = sum(1 for i, j in zip(m.pred_idx, m.truth_idx) if a[i][2] == b[j][2])
    pa, pb = positive_pct(a), positive_pct(b)
    return {
        "n_a": n_a, "n_b": n_b, "matched": m.n_matched, "f1": f1,
        "label_agreement": same / m.n_matched if m.n_matched else None,
        "positive_pct_a": pa, "positive_pct_b": pb,
        "positive_pct_difference": abs(pa - pb) if pa is not None and pb is not None else None,
    }


def agreement(sets: dict[str, list], radius_px: float) -> dict:
    """Every pair of annotators' sets; mean F1 and largest positive-% difference."""
    pairs = []
    for (name_a, a), (name_b, b) in combinations(sets.items(), 2):
        pairs.append({"a": name_a, "b": name_b, **pair_agreement(a, b, radius_px)})
    f1s = [p["f1"] for p in pairs]
    diffs = [p["positive_pct_difference"] for p in pairs if p["positive_pct_difference"] is not None]
    return {"annotators": list(sets), "radius_px": radius_px, "pairs": pairs,
            "mean_f1": float(np.mean(f1s)) if f1s else None,
            "max_positive_pct_difference": max(diffs) if diffs else None}


MIN_ANNOTATORS = 2  # a "consensus" of one annotator is that annotator's own set


class TooFewAnnotators(ValueError):
    """Consensus asked of fewer than MIN_ANNOTATORS sets."""


def consensus(sets: dict[str, list], radius_px: float, min_votes: int | None = None) -> dict:
    """Consensus points: clusters matched across annotators, kept when a majority found them.

    Annotators are taken in turn; each one's points are matched one-to-one (optimal
    assignment, analysis.matching) to the centroids of the clusters found so far, and the
    unmatched ones open new clusters, so a cluster holds at most one point per annotator.
    A cluster with at least ``min_votes`` points (default: a strict majority of the
    annotators) whose label has a strict majority of its votes becomes a consensus point at
    the mean position (``points``).

    The rest is returned apart, never as a labelled point: a cluster found by enough annotators
    whose labels tie (``uncertain``: breaking the tie by a label order made every 1-1 split
    positive, inflating the positive share) and one found by too few (``unconfirmed``).  Each as
    {"x", "y", "votes": {label: n}, "found_by": n}.  Fewer than MIN_ANNOTATORS sets raise
    TooFewAnnotators: one annotator's set is not a consensus.
    """
    k = len(sets)
    if k < MIN_ANNOTATORS:
        raise TooFewAnnotators(f"a consensus needs the sets of at least {MIN_ANNOTATORS} annotators, got {k}")
    need = min_votes if min_votes is not None else k // 2 + 1
    clusters: list[dict] = []  # {"xy": [[x, y]...], "labels": [...], "who": [...]}
    for name, points in sets.items():
        centroids = np.asarray([np.mean(c["xy"], axis=0) for c in clusters], np.float64).reshape(-1, 2)
        m = match_points(_xy(points), centroids, radius_px)
        for i, j in zip(m.pred_idx, m.truth_idx):
            c = clusters[j]
            c["xy"].append(points[i][:2]), c["labels"].append(points[i][2]), c["who"].append(name)
        for i in m.unmatched_pred:
            clusters.append({"xy": [list(points[i][:2])], "labels": [points[i][2]], "who": [name]})
    out, uncertain, unconfirmed = [], [], []
    for c in clusters:
        votes: dict[str, int] = {}
        for label in c["labels"]:
            votes[label] = votes.get(label, 0) + 1
        x, y = (round(float(v), 2) for v in np.mean(c["xy"], axis=0))
        apart = {"x": x, "y": y, "votes": dict(sorted(votes.items())), "found_by": len(c["who"])}
        if len(c["who"]) < need:
            unconfirmed.append(apart)
            continue
        best = max(votes.values())
        winners = [lab for lab, v in votes.items() if v == best]
        if len(winners) > 1:
            uncertain.append(apart)
            continue
        out.append([x, y, winners[0]])
    return {"annotators": list(sets), "min_votes": need, "radius_px": radius_px, "points": out,
            "uncertain": uncertain, "unconfirmed": unconfirmed, "clusters": len(clusters),
            "label_ties": len(uncertain)}
