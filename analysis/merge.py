"""Merge per-tile detections into one slide-wide set, and count them.

Core ownership (analysis.tiling) already keeps most nuclei once; what is left are the same
nucleus found by two tiles near a core border, each of which keeps a narrow band past it.  Those are
resolved by the one non-maximum suppression (analysis.nms: greedy by score, ties by input order,
so the result is deterministic; a point is dropped when a kept, better point lies closer than the
radius).
Label codes follow analysis.detectors: 1 positive tumour cell, 2 negative tumour cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.labels import NEGATIVE, POSITIVE
from analysis.nms import greedy_keep
from analysis.scoring import tps  # noqa: F401  re-exported: merge results are scored here


@dataclass
class Merged:
    xy: np.ndarray  # (N, 2) float32 level-0 px, in input order
    labels: np.ndarray  # (N,) int8
    scores: np.ndarray  # (N,) float32
    n_input: int
    n_duplicates: int  # points dropped as duplicates
    kept: np.ndarray | None = None  # (n_input,) bool: which input points these are

    def __len__(self) -> int:
        return len(self.labels)


def merge_detections(batches, dedupe_radius_px: float) -> Merged:
    """Concatenate (xy, labels, scores) batches and drop duplicates within the radius."""
    batches = list(batches) or [(np.zeros((0, 2)), np.zeros(0), np.zeros(0))]
    for i, (b_xy, b_labels, b_scores) in enumerate(batches):
        if not (len(np.reshape(b_xy, (-1, 2))) == len(b_labels) == len(b_scores)):
            raise ValueError(f"batch {i}: xy, labels and scores differ in length")
    xy = np.concatenate([np.asarray(b[0], np.float32).reshape(-1, 2) for b in batches])
    labels = np.concatenate([np.asarray(b[1], np.int8).reshape(-1) for b in batches])
    scores = np.concatenate([np.asarray(b[2], np.float32).reshape(-1) for b in batches])
    keep = greedy_keep(xy, scores, dedupe_radius_px)
    return Merged(xy[keep], labels[keep], scores[keep], n_input=len(labels), n_duplicates=int(len(labels) - keep.sum()),
                  kept=keep)


def counts(labels: np.ndarray) -> dict[str, int]:
    """{"positive", "negative", "other"}: a plain dict, stored as is in a result's JSON summary.

    "other" is any label that is not a tumour cell (e.g. immune or stromal cells).
    """
    labels = np.asarray(labels).reshape(-1)
    n_pos = int(np.count_nonzero(labels == POSITIVE))
    n_neg = int(np.count_nonzero(labels == NEGATIVE))
    return {"positive": n_pos, "negative": n_neg, "other": int(len(labels) - n_pos - n_neg)}
