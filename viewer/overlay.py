"""The corrected result, as pure functions: model detections (a read-only store) with the
pathologists' corrections folded on top (CorrectionState). No database here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analysis.labels import LABEL_CODES, LABEL_NAMES
from analysis.scoring import stated_pct, tps
from viewer.choices import CorrectionOp
from viewer.geometry import Regions
from viewer.stores import base_density


@dataclass
class CorrectionState:
    """The effect of a job's active corrections on its model detections."""

    deleted: set[int] = field(default_factory=set)  # store indices
    relabelled: dict[int, int] = field(default_factory=dict)  # store index -> label code
    added: dict[int, list] = field(default_factory=dict)  # correction id -> [x, y, label code]

    def deleted_array(self) -> np.ndarray:
        return np.fromiter(sorted(self.deleted), np.int64, len(self.deleted))

    def relabel_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        keys = sorted(self.relabelled)
        return np.asarray(keys, np.int64), np.asarray([self.relabelled[k] for k in keys], np.int8)


def fold_corrections(rows) -> CorrectionState:
    """Apply corrections in version order; undone ones and undo records themselves are skipped.

    `rows`: objects with op, detection, target_id, pk, x, y, label, undone_by_id (Correction rows).
    """
    state = CorrectionState()
    for row in sorted(rows, key=lambda r: r.version):
        if row.undone_by_id is not None or row.op == CorrectionOp.UNDO:
            continue
        if row.op == CorrectionOp.ADD:
            state.added[row.pk] = [float(row.x), float(row.y), int(row.label)]
        elif row.op == CorrectionOp.DELETE:
            if row.target_id is not None:
                state.added.pop(row.target_id, None)
            else:
                state.deleted.add(int(row.detection))
                state.relabelled.pop(int(row.detection), None)
        elif row.op == CorrectionOp.RECLASSIFY:
            if row.target_id is not None:
                if row.target_id in state.added:
                    state.added[row.target_id][2] = int(row.label)
            elif int(row.detection) not in state.deleted:
                state.relabelled[int(row.detection)] = int(row.label)
    return state


def _apply_to_indices(store, state: CorrectionState, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kept indices, their effective labels) for ascending store indices `idx`."""
    labels = store.take(idx).labels
    if state.relabelled and len(idx):
        keys, values = state.relabel_arrays()
        pos = np.searchsorted(idx, keys)
        hit = pos < len(idx)
        hit[hit] = idx[pos[hit]] == keys[hit]
        labels[pos[hit]] = values[hit]
    if state.deleted and len(idx):
        keep = ~np.isin(idx, state.deleted_array(), assume_unique=True)
        idx, labels = idx[keep], labels[keep]
    return idx, labels


def viewport(store, state: CorrectionState, x0, y0, x1, y1, max_points: int, layers: set[int],
             as_arrays: bool = False) -> dict:
    """Corrected points in a box: model points (thinned evenly to fit `max_points`) plus added ones.

    as_arrays: numpy arrays instead of lists where no added point mixes in (for a renderer that
    encodes arrays directly, viewer.api.FastJSONRenderer); the values are the same."""
    idx, labels = _apply_to_indices(store, state, store.indices(x0, y0, x1, y1))
    wanted = np.isin(labels, np.asarray(sorted(layers), np.int8))
    idx, labels = idx[wanted], labels[wanted]
    added = [(cid, p) for cid, p in state.added.items()
             if p[2] in layers and x0 <= p[0] < x1 and y0 <= p[1] < y1]
    total = len(idx) + len(added)
    added = added[:max_points]
    room = max_points - len(added)
    if len(idx) > room:
        pick = np.linspace(0, len(idx) - 1, room).round().astype(np.int64) if room > 0 else np.zeros(0, np.int64)
        idx, labels = idx[pick], labels[pick]
    points = store.take(idx)
    xy = np.round(points.xy.astype(np.float64), 1)
    scores = np.round(points.scores.astype(np.float64), 3)
    corrected = (np.isin(idx, np.asarray(sorted(state.relabelled), np.int64)) if state.relabelled
                 else np.zeros(len(idx), bool))
    out = {"total": int(total), "returned": int(len(idx) + len(added))}
    if as_arrays and not added:
        out.update(xy=xy.reshape(-1, 2), labels=labels.astype(np.int64), scores=scores, ids=idx.astype(np.int64),
                   corrected=corrected)
        return out
    out.update(
        xy=xy.tolist() + [[round(p[0], 1), round(p[1], 1)] for _, p in added],
        labels=labels.tolist() + [p[2] for _, p in added],
        scores=scores.tolist() + [1.0] * len(added),
        ids=idx.tolist() + [f"c{cid}" for cid, _ in added],
        corrected=corrected.tolist() + [True] * len(added),
    )
    return out


def nearest_live_point(store, state: CorrectionState, x: float, y: float, radius_px: float):
    """(id, label, distance px) of the live point nearest (x, y) closer than `radius_px` (a model detection
    not deleted, by the store's spatial index, or an added point), or None. Ids as in the overlay."""
    best = None
    idx = store.indices(x - radius_px, y - radius_px, x + radius_px + 1e-6, y + radius_px + 1e-6)
    idx, labels = _apply_to_indices(store, state, idx)
    if len(idx):
        d = np.hypot(*(store.take(idx).xy.astype(np.float64) - (x, y)).T)
        i = int(np.argmin(d))
        if d[i] < radius_px:
            best = (int(idx[i]), int(labels[i]), float(d[i]))
    for cid, (px, py, label) in state.added.items():
        d = math.hypot(px - x, py - y)
        if d < radius_px and (best is None or d < best[2]):
            best = (f"c{cid}", int(label), d)
    return best


def point_detail(store, state: CorrectionState, point_id: str) -> dict | None:
    """One point by id (store index or "c<correction id>"); None if it does not exist or was deleted."""
    point_id = str(point_id)
    if point_id.startswith("c"):
        try:
            cid = int(point_id[1:])
        except ValueError:
            return None
        p = state.added.get(cid)
        if p is None:
            return None
        return {"id": point_id, "x": round(p[0], 1), "y": round(p[1], 1), "label": p[2],
                "label_name": LABEL_NAMES.get(p[2], str(p[2])), "score": None, "corrected": True}
    try:
        index = int(point_id)
    except ValueError:
        return None
    if not 0 <= index < len(store) or index in state.deleted:
        return None
    point = store.take([index])
    original = int(point.labels[0])
    label = state.relabelled.get(index, original)
    return {"id": index, "x": round(float(point.xy[0, 0]), 1),
            "y": round(float(point.xy[0, 1]), 1), "label": label,
            "label_name": LABEL_NAMES.get(label, str(label)),
            "score": round(float(point.scores[0]), 3),
            "corrected": index in state.relabelled, "model_label": original}


def corrected_counts(store, state: CorrectionState, regions: Regions | None = None) -> dict[str, int]:
    """Counts per class of the model's detections with the corrections applied; with `regions`
    (drawn include/exclude polygons), only the points they keep count."""
    if regions:
        xy, labels = corrected_points(store, state)
        labels = labels[regions.mask(xy)]
        positive = int((labels == LABEL_CODES["positive"]).sum())
        negative = int((labels == LABEL_CODES["negative"]).sum())
        return {"positive": positive, "negative": negative, "other": int(len(labels)) - positive - negative}
    codes = {code: int(n) for code, n in store.counts.items()}
    touched = np.asarray(sorted(state.deleted | set(state.relabelled)), np.int64)
    original = store.take(touched).labels.astype(int)
    for index, label in zip(touched.tolist(), list(original)):
        codes[label] = codes.get(label, 0) - 1
        if index not in state.deleted:
            new = state.relabelled[index]
            codes[new] = codes.get(new, 0) + 1
    for _, _, label in state.added.values():
        codes[label] = codes.get(label, 0) + 1
    positive, negative = codes.get(LABEL_CODES["positive"], 0), codes.get(LABEL_CODES["negative"], 0)
    other = sum(n for code, n in codes.items() if code not in LABEL_NAMES)
    return {"positive": positive, "negative": negative, "other": other}


def scores_from_counts(counts: dict) -> dict:
    """Counts and the TPS as stated. No category here: it needs the adequacy minimum and the case's cut-off
    table (viewer.scores.job_scores reads them through analysis.scoring.score_summary)."""
    return {"counts": counts, "tps": stated_pct(tps(counts["positive"], counts["negative"]))}


def corrected_density(store, state: CorrectionState, grid_px: float) -> dict:
    base = base_density(store, grid_px)
    rows_n, cols_n = int(math.ceil(store.height / grid_px)), int(math.ceil(store.width / grid_px))
    layers = {code: base.get(code, np.zeros((rows_n, cols_n), np.int64)).copy() for code in LABEL_NAMES}

    def cell(x, y):
        return (min(max(int(y // grid_px), 0), rows_n - 1), min(max(int(x // grid_px), 0), cols_n - 1))

    touched = store.take(sorted(state.deleted | set(state.relabelled)))
    for index, (x, y), original in zip(touched.ids.tolist(), touched.xy.tolist(), touched.labels.tolist()):
        where = cell(x, y)
        if original in layers:
            layers[original][where] -= 1
        new = None if index in state.deleted else state.relabelled[index]
        if new in layers:
            layers[new][where] += 1
    for x, y, label in state.added.values():
        if label in layers:
            layers[label][cell(x, y)] += 1
    positive, negative = layers[LABEL_CODES["positive"]], layers[LABEL_CODES["negative"]]
    return {"grid_px": grid_px, "shape": [rows_n, cols_n], "positive": positive.tolist(),
            "negative": negative.tolist(), "max": int(max(positive.max(initial=0), negative.max(initial=0)))}


POINT_SOURCES = ("model", "relabelled", "added")  # unreviewed model output, a pathologist's class, a pathologist's cell


def corrected_points_with_source(store, state: CorrectionState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """corrected_points and, per point, its index in POINT_SOURCES: which points a pathologist made or
    reclassified and which are the model's unreviewed output (a training export must tell them apart)."""
    idx, _ = _apply_to_indices(store, state, np.arange(len(store), dtype=np.int64))
    xy, labels = corrected_points(store, state)
    source = np.zeros(len(labels), np.int8)
    if state.relabelled and len(idx):
        source[:len(idx)][np.isin(idx, state.relabel_arrays()[0])] = POINT_SOURCES.index("relabelled")
    source[len(idx):] = POINT_SOURCES.index("added")
    return xy, labels, source


def corrected_points(store, state: CorrectionState) -> tuple[np.ndarray, np.ndarray]:
    """Every point of the corrected result: (xy level-0 px, label codes), model points then added ones."""
    idx, labels = _apply_to_indices(store, state, np.arange(len(store), dtype=np.int64))
    xy = store.take(idx).xy.astype(np.float64)
    if state.added:
        extra = np.asarray([[p[0], p[1]] for p in state.added.values()], np.float64)
        xy = np.concatenate([xy.reshape(-1, 2), extra])
        labels = np.concatenate([labels, np.asarray([p[2] for p in state.added.values()], np.int8)])
    return xy, labels
