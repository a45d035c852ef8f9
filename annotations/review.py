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


def consensus(sets: dict[str, list], radius_px: float, label_order=("positive", "negative"),
              min_votes: int | None = None) -> dict:
    """Consensus points: clusters matched across annotators, kept when a majority found them.

    Annotators are taken in turn; each one's points are matched one-to-one (optimal
    assignment, analysis.matching) to the centroids of the clusters found so far, and the
    unmatched ones open new clusters, so a cluster holds at most one point per annotator.
    A cluster with at least ``min_votes`` points (default: a strict majority of the
    annotators) becomes a consensus point at the mean position; its label is the majority
    vote, ties broken by ``label_order`` (and reported).
    """
    k = len(sets)
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
    rank = {name: r for r, name in enumerate(label_order)}
    out, ties = [], 0
    for c in clusters:
        if len(c["who"]) < need:
            continue
        votes: dict[str, int] = {}
        for label in c["labels"]:
            votes[label] = votes.get(label, 0) + 1
        best = max(votes.values())
        winners = sorted((lab for lab, v in votes.items() if v == best), key=lambda lab: (rank.get(lab, len(rank)), lab))
        ties += len(winners) > 1
        x, y = np.mean(c["xy"], axis=0)
        out.append([round(float(x), 2), round(float(y), 2), winners[0]])
    return {"annotators": list(sets), "min_votes": need, "radius_px": radius_px, "points": out,
            "clusters": len(clusters), "label_ties": ties}
