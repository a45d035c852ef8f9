"""The viewer's logic: who sees which slide and job, the overlay of detections with pathologists'
corrections on top, scores recomputed from both, correction history with optimistic concurrency,
training exports, and job progress with an ETA.

Model detections live in the job's detection store (analysis.detection_store) and are never
modified; corrections are rows (viewer.models.Correction) applied on top when read. The pure
functions (fold_corrections, viewport, corrected_counts, ...) take a store and a CorrectionState
and touch no database.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from analysis.choices import FINAL_JOB_STATUSES, JobStatus
from analysis.detection_store import DetectionStore, open_store
from analysis.labels import LABEL_CODES, LABEL_NAMES
from analysis.models import AnalysisJob
from analysis.accuracy import detector_error
from analysis.scoring import (
    CUTOFFS_22C3_NSCLC_TPS,
    INTERVAL_BLOCK_UM,
    block_counts,
    positive_pct_interval,
    tps,
    tps_category,
    tps_cutoffs,
    uncertainty,
)
from cases import access
from cases.choices import Role
from cases.results import NoResult
from viewer.choices import INCLUDE_REGION_KINDS, CorrectionOp, ExportFormat, RegionKind

MAX_POINTS_LIMIT = 100_000
DEFAULT_MAX_POINTS = 20_000
GRID_PX_RANGE = (16, 1 << 20)
MAX_DENSITY_CELLS = 1 << 20
MAX_REGION_VERTICES = 1000
HOTSPOT_FIELD_MM2 = 1.0
HOTSPOT_MIN_CELLS = 20
VIEWER_ROLES = (Role.ADMIN, Role.PATHOLOGIST)
PSEUDO_ROLES = (Role.ADMIN, Role.PATHOLOGIST, Role.ANNOTATOR)


class ViewerInputError(ValueError):
    """Bad query parameters or correction input (HTTP 400); the message is for the user."""

    http_status = 400  # pdl1site.rest.exception_handler


class CorrectionConflict(Exception):
    """The correction was based on an older version (HTTP 409)."""

    http_status = 409

    def __init__(self, message: str, version: int):
        super().__init__(message)
        self.version = version

    def http_extra(self) -> dict:
        return {"version": self.version}


# --- Access -----------------------------------------------------------------------------------

def check_may_view_slides(user) -> bool:
    """Slides with their clinical identity (tiles by id, overlay, corrections): admins, pathologists."""
    return access.has_role(user, *VIEWER_ROLES)


def check_may_view_pseudonymous(user) -> bool:
    return access.has_role(user, *PSEUDO_ROLES)


def viewable_slides(user):
    return access.visible_slides(user)


def pseudonymous_slides(user):
    return access.pseudonymous_slides(user)


def viewable_jobs(user):
    return AnalysisJob.objects.filter(slide__in=access.visible_slides(user)).select_related("slide__case")


def latest_jobs(slide) -> tuple[AnalysisJob | None, AnalysisJob | None]:
    """(latest done job, latest unfinished job) of a slide."""
    jobs = AnalysisJob.objects.filter(slide=slide).order_by("-created_at", "-pk")
    done = jobs.filter(status=JobStatus.DONE).first()
    running = jobs.exclude(status__in=FINAL_JOB_STATUSES).first()
    return done, running


def slide_info(slide, dzi_url: str) -> dict:
    from viewer.tiles import max_zoom_ratio

    return {"width": slide.width, "height": slide.height, "mpp_x": slide.mpp_x, "mpp_y": slide.mpp_y,
            "objective_power": slide.objective_power, "dzi_url": dzi_url,
            "max_zoom_ratio": max_zoom_ratio(slide.mpp_x)}


def tile_etag_prefix(slide) -> str:
    """What a tile's bytes depend on besides its address (the file's content and the tiling), as an
    opaque keyed hash: the file's sha256 itself, shown to annotators, would link a pseudonymous
    slide to its identified record."""
    from django.utils.crypto import salted_hmac

    from viewer.tiles import TILE_SIZE, OVERLAP, _jpeg_quality

    return salted_hmac("viewer.tile-etag", f"{slide.sha256}-{TILE_SIZE}-{OVERLAP}-q{_jpeg_quality()}",
                       algorithm="sha256").hexdigest()[:32]


def tile_etag(slide, level: int, col: int, row: int) -> str:
    return f'"{tile_etag_prefix(slide)}-{level}-{col}-{row}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return etag in tags


# --- Job progress -----------------------------------------------------------------------------

def estimate_eta(status: str, tiles_done: int, tiles_total: int, elapsed_s: float | None) -> float | None:
    """Seconds left: linear in tiles (the detect stage dominates); 0 when final, None when unknown."""
    if status in FINAL_JOB_STATUSES:
        return 0.0
    if status != JobStatus.RUNNING or not tiles_total or not tiles_done or elapsed_s is None or elapsed_s < 0:
        return None
    left = max(tiles_total - tiles_done, 0)
    return round(elapsed_s * left / tiles_done, 1)


def job_eta(job, state: dict | None = None, now=None) -> float | None:
    state = state or {}
    status = state.get("status", job.status)
    elapsed = None
    if job.started_at is not None:
        elapsed = ((now or timezone.now()) - job.started_at).total_seconds()
    return estimate_eta(status, state.get("tiles_done", job.tiles_done), state.get("tiles_total", job.tiles_total),
                        elapsed)


def job_state_with_eta(job) -> dict:
    from workers.progress import job_state

    state = job_state(job)
    return {**state, "eta_s": job_eta(job, state)}


# --- Detection stores -------------------------------------------------------------------------

class _StoreCache:
    def __init__(self, size: int = 16):
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, path: Path) -> DetectionStore:
        key = (str(path), os.stat(path).st_mtime_ns)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        store = open_store(path)
        with self._lock:
            self._entries[key] = store
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return store


_stores = _StoreCache()
_densities: OrderedDict = OrderedDict()
_densities_lock = threading.Lock()


def job_store(job) -> DetectionStore:
    if job.status != JobStatus.DONE or not job.result_file:
        raise NoResult(f"job {job.pk} is {job.status}: it has no detections to show yet")
    path = Path(settings.MEDIA_ROOT) / job.result_file
    try:
        return _stores.get(path)
    except (OSError, ValueError) as exc:
        raise NoResult(f"the detections of job {job.pk} cannot be read: {exc}") from None


# --- Corrections: pure folding and queries -----------------------------------------------------

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


def corrected_counts(store, state: CorrectionState, regions: "Regions | None" = None) -> dict[str, int]:
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


def scores_from_counts(counts: dict, assay_clone: str | None = None) -> dict:
    value = tps(counts["positive"], counts["negative"])
    return {"counts": counts, "tps": None if value is None else round(value, 2),
            "tps_category": tps_category(value, assay_clone)}


def corrected_density(store, state: CorrectionState, grid_px: float) -> dict:
    base = _base_density(store, grid_px)
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


def _base_density(store, grid_px: float) -> dict[int, np.ndarray]:
    key = (str(store.path), os.stat(store.path).st_mtime_ns, float(grid_px))
    with _densities_lock:
        if key in _densities:
            _densities.move_to_end(key)
            return _densities[key]
    found = store.density(grid_px)
    with _densities_lock:
        _densities[key] = found
        while len(_densities) > 32:
            _densities.popitem(last=False)
    return found


def corrected_points(store, state: CorrectionState) -> tuple[np.ndarray, np.ndarray]:
    """Every point of the corrected result: (xy level-0 px, label codes), model points then added ones."""
    idx, labels = _apply_to_indices(store, state, np.arange(len(store), dtype=np.int64))
    xy = store.take(idx).xy.astype(np.float64)
    if state.added:
        extra = np.asarray([[p[0], p[1]] for p in state.added.values()], np.float64)
        xy = np.concatenate([xy.reshape(-1, 2), extra])
        labels = np.concatenate([labels, np.asarray([p[2] for p in state.added.values()], np.int8)])
    return xy, labels


_QUPATH_CLASSES = {"positive": ("Positive", [200, 0, 0]), "negative": ("Negative", [112, 112, 225])}


def export_annotations(store, state: CorrectionState, fmt: str, meta: dict | None = None) -> tuple[bytes, str]:
    """The full corrected point set (model output + corrections) as training annotations.

    csv: header x,y,label (level-0 px, label positive|negative|<code>); geojson: a QuPath-style
    FeatureCollection with one MultiPoint annotation per class. Returns (body, content type).
    """
    xy, labels = corrected_points(store, state)
    names = np.asarray([LABEL_NAMES.get(int(c), str(int(c))) for c in range(-128, 128)], dtype=object)
    label_names = names[labels.astype(np.int16) + 128] if len(labels) else np.zeros(0, object)
    if fmt == ExportFormat.CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["x", "y", "label"])
        writer.writerows(zip(np.round(xy[:, 0], 1).tolist(), np.round(xy[:, 1], 1).tolist(), label_names.tolist()))
        return out.getvalue().encode(), "text/csv"
    if fmt == ExportFormat.GEOJSON:
        features = []
        for name in sorted(set(label_names.tolist())):
            sel = label_names == name
            qp_name, colour = _QUPATH_CLASSES.get(name, (name, [128, 128, 128]))
            features.append({
                "type": "Feature",
                "geometry": {"type": "MultiPoint", "coordinates": np.round(xy[sel], 1).tolist()},
                "properties": {"objectType": "annotation", "isLocked": False,
                               "classification": {"name": qp_name, "color": colour}, "count": int(sel.sum())},
            })
        body = {"type": "FeatureCollection", "features": features, "properties": meta or {}}
        return json.dumps(body).encode(), "application/geo+json"
    raise ViewerInputError(f"format must be one of {', '.join(ExportFormat.values)}")


# --- Query parameters ---------------------------------------------------------------------------

def _number(params, name, default=None, *, integer=False):
    raw = params.get(name)
    if raw in (None, ""):
        if default is None:
            raise ViewerInputError(f"{name} is required")
        return default
    try:
        value = int(raw) if integer else float(raw)
    except (TypeError, ValueError):
        raise ViewerInputError(f"{name} must be {'an integer' if integer else 'a number'}, got {raw!r}") from None
    if not math.isfinite(value):
        raise ViewerInputError(f"{name} must be finite")
    return value


def check_viewport_params(params) -> dict:
    """x0, y0, x1, y1 (level-0 px), max and layers from a query string; raises ViewerInputError."""
    box = {k: _number(params, k) for k in ("x0", "y0", "x1", "y1")}
    if box["x1"] <= box["x0"] or box["y1"] <= box["y0"]:
        raise ViewerInputError("the viewport must have x1 > x0 and y1 > y0")
    max_points = _number(params, "max", DEFAULT_MAX_POINTS, integer=True)
    if not 1 <= max_points <= MAX_POINTS_LIMIT:
        raise ViewerInputError(f"max must be between 1 and {MAX_POINTS_LIMIT}")
    layers = check_layers(params.get("layers"))
    return {**box, "max_points": max_points, "layers": layers}


def check_layers(raw) -> set[int]:
    if raw in (None, ""):
        return set(LABEL_NAMES)
    names = [n.strip() for n in str(raw).split(",") if n.strip()]
    unknown = [n for n in names if n not in LABEL_CODES]
    if unknown or not names:
        raise ViewerInputError(f"layers must be a comma-separated list of {', '.join(LABEL_CODES)}")
    return {LABEL_CODES[n] for n in names}


def check_grid_px(params, store) -> int:
    grid_px = _number(params, "grid_px", 512, integer=True)
    if not GRID_PX_RANGE[0] <= grid_px <= GRID_PX_RANGE[1]:
        raise ViewerInputError(f"grid_px must be between {GRID_PX_RANGE[0]} and {GRID_PX_RANGE[1]}")
    if math.ceil(store.width / grid_px) * math.ceil(store.height / grid_px) > MAX_DENSITY_CELLS:
        raise ViewerInputError("grid_px is too small for this slide: the grid would have over a million cells")
    return grid_px


def check_export_format(params) -> str:
    fmt = params.get("format") or ExportFormat.CSV
    if fmt not in ExportFormat.values:
        raise ViewerInputError(f"format must be one of {', '.join(ExportFormat.values)}")
    return fmt


# --- Corrections: reading and writing ---------------------------------------------------------

def correction_state(job) -> CorrectionState:
    from viewer.models import Correction

    return fold_corrections(Correction.objects.filter(job=job).only(
        "pk", "version", "op", "detection", "target_id", "x", "y", "label", "undone_by_id"))


def correction_version(job) -> int:
    from viewer.models import CorrectionSet

    return CorrectionSet.objects.filter(job=job).values_list("version", flat=True).first() or 0


def job_scores(job, store=None, state=None, regions=None) -> dict:
    """The corrected scores of a job: corrections applied, counted inside its drawn regions only.

    The one place viewer, reports and the report PDF get their counts from.
    """
    store = store or job_store(job)
    state = state if state is not None else correction_state(job)
    regions = regions if regions is not None else job_regions(job)
    assay = job.slide.case.assay_clone if job.slide.case_id else None
    scores = scores_from_counts(corrected_counts(store, state, regions), assay)
    interval, error = tps_interval(job, store, state, regions)
    stated = uncertainty(interval, tps_cutoffs(assay) or CUTOFFS_22C3_NSCLC_TPS)  # as score_summary does
    scores.update(tps_interval=stated["interval"], detector_error=error.basis, near_cutoff=stated["near_cutoff"],
                  uncertainty=stated["uncertainty"])
    return scores


def detector_key(job) -> str:
    """What the job ran, as analysis.accuracy keys it: "classic:<compartment>:<adaptive|constant>" or
    the sha256 of the weights."""
    provenance = job.provenance or {}
    if provenance.get("kind") == "classic":  # measured per compartment and kind of cut
        params = provenance.get("parameters") or {}
        cut = "adaptive" if params.get("dab_threshold") == "adaptive" else "constant"
        return f"classic:{params.get('compartment', 'membrane')}:{cut}"
    if job.model_version_id:
        return job.model_version.sha256
    return provenance.get("sha256", "")


def tps_interval(job, store, state: CorrectionState, regions: "Regions | None"):
    """95 % interval of the corrected TPS: bootstrap over ~0.5 mm blocks of the counted cells,
    widened by the detector's measured error on unseen labs (analysis.accuracy)."""
    xy, labels = corrected_points(store, state)
    if regions:
        keep = regions.mask(xy)
        xy, labels = xy[keep], labels[keep]
    block_px = INTERVAL_BLOCK_UM / float(store.mpp or 0.5)
    error = detector_error(detector_key(job))
    return positive_pct_interval(*block_counts(xy, labels, block_px), error.positive_pct_pp), error


def correction_item(row) -> dict:
    detection = row.detection
    if row.target_id is not None and row.op in (CorrectionOp.DELETE, CorrectionOp.RECLASSIFY):
        detection = f"c{row.target_id}"
    return {
        "id": row.pk, "version": row.version, "op": row.op, "detection": detection,
        "point_id": f"c{row.pk}" if row.op == CorrectionOp.ADD else None,
        "target": row.target_id, "x": row.x, "y": row.y,
        "label": LABEL_NAMES.get(row.label) if row.label is not None else None,
        "author": row.author.get_username(), "created_at": row.created_at.isoformat(),
        "active": row.is_active, "undone_by": row.undone_by_id,
    }


def corrections_overview(job) -> dict:
    from viewer.models import Correction

    rows = list(Correction.objects.filter(job=job).select_related("author"))
    store = job_store(job)
    state = fold_corrections(rows)
    return {"version": correction_version(job), "items": [correction_item(r) for r in rows],
            "scores": job_scores(job, store, state)}


def _label(value) -> int:
    if isinstance(value, str) and value in LABEL_CODES:
        return LABEL_CODES[value]
    if isinstance(value, int) and not isinstance(value, bool) and value in LABEL_NAMES:
        return value
    raise ViewerInputError("label must be positive or negative")


def _coordinate(data, name, limit) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ViewerInputError(f"{name} must be a number (level-0 px)")
    try:
        value = float(value)
    except ValueError:
        raise ViewerInputError(f"{name} must be a number (level-0 px)") from None
    if not (math.isfinite(value) and 0 <= value < limit):
        raise ViewerInputError(f"{name}={value:g} is outside the slide (0 to {limit} px)")
    return value


def _point_ref(data) -> tuple[int | None, int | None]:
    """(store index, added-point correction id) named by data["detection"] (or data["id"])."""
    value = data.get("detection", data.get("id"))
    if value is None:
        raise ViewerInputError("detection is required: a point id from the overlay")
    if isinstance(value, str) and value.startswith("c"):
        try:
            return None, int(value[1:])
        except ValueError:
            raise ViewerInputError(f"detection {value!r} is not a point id") from None
    if isinstance(value, bool):
        raise ViewerInputError("detection must be a point id")
    try:
        index = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ViewerInputError(f"detection {str(value)[:40]!r} is not a point id") from None
    if isinstance(value, float) and value != index:
        raise ViewerInputError(f"detection {value!r} is not a point id")
    return index, None


def check_correction(job, store, state: CorrectionState, data: dict) -> dict:
    """Validate a correction against the current corrected result; returns the fields to save."""
    from viewer.models import Correction

    op = data.get("op")
    if op not in (CorrectionOp.ADD, CorrectionOp.DELETE, CorrectionOp.RECLASSIFY, CorrectionOp.UNDO):
        raise ViewerInputError(f"op must be one of {', '.join(CorrectionOp.values)}")
    if op == CorrectionOp.ADD:
        return {"op": op, "x": _coordinate(data, "x", job.slide.width), "y": _coordinate(data, "y", job.slide.height),
                "label": _label(data.get("label"))}
    if op == CorrectionOp.UNDO:
        target = data.get("target")
        try:
            target = int(target)
            if not 0 < target < 2**63:  # a database id; larger ones overflow the query
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise ViewerInputError("target is required: the id of the correction to undo") from None
        row = Correction.objects.filter(job=job, pk=target).first()
        if row is None:
            raise ViewerInputError(f"correction {target} does not exist on this job")
        if row.op == CorrectionOp.UNDO:
            raise ViewerInputError("an undo cannot be undone; make the correction again")
        if row.undone_by_id is not None:
            raise ViewerInputError(f"correction {target} is already undone")
        return {"op": op, "target": row}
    index, added = _point_ref(data)
    if added is not None:
        if added not in state.added:
            raise ViewerInputError(f"point c{added} does not exist (never added, deleted or undone)")
        current = state.added[added][2]
        fields = {"op": op, "target": Correction.objects.get(pk=added, job=job)}
    else:
        if not 0 <= index < len(store):
            raise ViewerInputError(f"detection {index} does not exist (the result has {len(store)})")
        if index in state.deleted:
            raise ViewerInputError(f"detection {index} is already deleted")
        current = state.relabelled.get(index, int(store.take([index]).labels[0]))
        fields = {"op": op, "detection": index}
    if op == CorrectionOp.RECLASSIFY:
        label = _label(data.get("label"))
        if label == current:
            raise ViewerInputError(f"the point is already {LABEL_NAMES[label]}")
        fields["label"] = label
    return fields


def conflict_message(correction_set) -> str:
    who = correction_set.updated_by.get_username() if correction_set.updated_by else "another user"
    when = timezone.localtime(correction_set.updated_at).strftime("%Y-%m-%d %H:%M:%S") \
        if correction_set.updated_at else "an earlier time"
    return f"This slide was corrected by {who} at {when} since you loaded it; reload to see their change."


def do_add_correction(job, user, data: dict) -> dict:
    """Save one correction if `data["base_version"]` is the current version.

    Returns {"version", "scores", "item"}; raises ViewerInputError (nothing saved),
    CorrectionConflict (stale base_version) or NoResult.
    """
    from viewer.models import Correction, CorrectionSet

    if not isinstance(data, dict):
        raise ViewerInputError("expected a JSON object")
    base = _base_version(data)
    store = job_store(job)
    CorrectionSet.objects.get_or_create(job=job)
    with transaction.atomic():
        correction_set = CorrectionSet.objects.select_for_update(of=("self",)).select_related("updated_by").get(job=job)
        if correction_set.is_stale(base):
            raise CorrectionConflict(conflict_message(correction_set), correction_set.version)
        state = correction_state(job)
        fields = check_correction(job, store, state, data)
        now = timezone.now()
        version = correction_set.bump(user, now)
        correction_set.save()
        row = Correction.objects.create(job=job, version=version, author=user, **fields)
        if row.op == CorrectionOp.UNDO:
            target = Correction.objects.select_for_update().get(pk=row.target_id)
            target.mark_undone(row)
            target.save(update_fields=["undone_by"])
        state = correction_state(job)
    row.author = user
    return {"version": version, "scores": job_scores(job, store, state), "item": correction_item(row)}


# --- Regions: include / exclude polygons ---------------------------------------------------------

@dataclass
class Regions:
    """Active drawn regions of a job: include polygons (tumour area) and exclude polygons."""

    include: list = field(default_factory=list)  # [np.ndarray (n, 2)]
    exclude: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def mask(self, xy: np.ndarray) -> np.ndarray:
        """Points that count: inside some include polygon (any point when there is none) and
        outside every exclude polygon."""
        from analysis.merge import points_in_polygon

        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        keep = np.zeros(len(xy), bool) if self.include else np.ones(len(xy), bool)
        for poly in self.include:
            keep |= _inside(xy, poly, points_in_polygon)
        for poly in self.exclude:
            if keep.any():
                keep &= ~_inside(xy, poly, points_in_polygon)
        return keep


def _inside(xy, poly, test) -> np.ndarray:
    (x0, y0), (x1, y1) = poly.min(axis=0), poly.max(axis=0)
    near = np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
    out = np.zeros(len(xy), bool)
    out[near[test(xy[near], poly)]] = True
    return out


def regions_from_rows(rows) -> Regions:
    regions = Regions()
    for row in rows:
        if getattr(row, "deleted_at", None) is not None:
            continue
        poly = np.asarray(row.vertices, np.float64).reshape(-1, 2)
        (regions.include if row.kind in INCLUDE_REGION_KINDS else regions.exclude).append(poly)
    return regions


def job_regions(job) -> Regions:
    from viewer.models import Region

    return regions_from_rows(Region.objects.filter(job=job, deleted_at__isnull=True).only("kind", "vertices"))


def region_item(row) -> dict:
    return {"id": row.pk, "kind": row.kind, "include": row.kind in INCLUDE_REGION_KINDS,
            "vertices": row.vertices, "version": row.version, "author": row.author.get_username(),
            "created_at": row.created_at.isoformat(), "active": row.deleted_at is None,
            "deleted_version": row.deleted_version,
            "deleted_by": row.deleted_by.get_username() if row.deleted_by_id else None,
            "deleted_at": row.deleted_at.isoformat() if row.deleted_at else None}


def _segments_cross(poly: np.ndarray) -> bool:
    """Whether any two non-adjacent edges of the closed polygon intersect (touching counts)."""
    n = len(poly)
    p, q = poly, np.roll(poly, -1, axis=0)

    def orient(a, b, c):  # sign of the cross product (b - a) x (c - a), pairwise over edges i (a, b), j (c)
        return np.sign((b[:, None, 0] - a[:, None, 0]) * (c[None, :, 1] - a[:, None, 1])
                       - (b[:, None, 1] - a[:, None, 1]) * (c[None, :, 0] - a[:, None, 0]))

    o1, o2 = orient(p, q, p), orient(p, q, q)  # [i, j]: edge i against the ends of edge j
    o3, o4 = o1.T, o2.T  # [i, j]: edge j against the ends of edge i
    crossing = (o1 * o2 <= 0) & (o3 * o4 <= 0)
    i, j = np.indices((n, n))
    adjacent = (i == j) | (j == (i + 1) % n) | (i == (j + 1) % n)
    collinear = (o1 == 0) & (o2 == 0)
    # collinear non-adjacent edges cross only when their projections overlap
    if collinear.any():
        lo_i, hi_i = np.minimum(p, q), np.maximum(p, q)
        overlap = ((lo_i[:, None, 0] <= hi_i[None, :, 0]) & (lo_i[None, :, 0] <= hi_i[:, None, 0])
                   & (lo_i[:, None, 1] <= hi_i[None, :, 1]) & (lo_i[None, :, 1] <= hi_i[:, None, 1]))
        crossing &= ~collinear | overlap
    return bool((crossing & ~adjacent).any())


def check_region(job, data: dict) -> dict:
    """Validate a drawn region; returns {"kind", "vertices"} (rounded to 0.1 px, unclosed)."""
    kind = data.get("kind")
    if kind not in RegionKind.values:
        raise ViewerInputError(f"kind must be one of {', '.join(RegionKind.values)}")
    raw = data.get("vertices")
    if not isinstance(raw, list):
        raise ViewerInputError("vertices must be a list of [x, y] level-0 px")
    width, height = job.slide.width, job.slide.height
    vertices = []
    for i, v in enumerate(raw):
        if not (isinstance(v, (list, tuple)) and len(v) == 2
                and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in v)):
            raise ViewerInputError(f"vertex {i} must be [x, y] (numbers, level-0 px)")
        x, y = float(v[0]), float(v[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ViewerInputError(f"vertex {i} must be finite")
        if not (0 <= x <= width and 0 <= y <= height):
            raise ViewerInputError(f"vertex {i} ({x:g}, {y:g}) is outside the slide (0 to {width} x 0 to {height} px)")
        vertices.append([round(x, 1), round(y, 1)])
    if len(vertices) > 1 and vertices[0] == vertices[-1]:
        vertices.pop()  # a closed ring: drop the repeated first vertex
    if len(vertices) < 3:
        raise ViewerInputError(f"a region needs at least 3 vertices, got {len(vertices)}")
    if len(vertices) > MAX_REGION_VERTICES:
        raise ViewerInputError(f"a region has at most {MAX_REGION_VERTICES} vertices, got {len(vertices)}")
    if len({tuple(v) for v in vertices}) != len(vertices):
        raise ViewerInputError("the region repeats a vertex")
    poly = np.asarray(vertices, np.float64)
    area = 0.5 * abs(float(np.dot(poly[:, 0], np.roll(poly[:, 1], -1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], -1))))
    if _segments_cross(poly):
        raise ViewerInputError("the region's outline crosses itself; draw it without crossing edges")
    if area < 1.0:
        raise ViewerInputError("the region has no area (its vertices are on one line)")
    return {"kind": kind, "vertices": vertices}


def _base_version(data) -> int:
    base = data.get("base_version")
    if isinstance(base, bool) or base is None:
        raise ViewerInputError("base_version is required: the version of the corrections you loaded")
    try:
        return int(base)
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e400 parses as infinity
        raise ViewerInputError("base_version must be an integer") from None


def regions_overview(job, include_deleted: bool = False) -> dict:
    from viewer.models import Region

    rows = Region.objects.filter(job=job).select_related("author", "deleted_by")
    if not include_deleted:
        rows = rows.filter(deleted_at__isnull=True)
    rows = list(rows)
    store = job_store(job)
    return {"version": correction_version(job), "items": [region_item(r) for r in rows],
            "scores": job_scores(job, store, regions=regions_from_rows(rows))}


def _locked_set(job, base: int):
    from viewer.models import CorrectionSet

    correction_set = CorrectionSet.objects.select_for_update(of=("self",)).select_related("updated_by").get(job=job)
    if correction_set.is_stale(base):
        raise CorrectionConflict(conflict_message(correction_set), correction_set.version)
    return correction_set


def do_add_region(job, user, data) -> dict:
    """Save a region if data["base_version"] is current: {"version", "scores", "item"}."""
    from viewer.models import CorrectionSet, Region

    if not isinstance(data, dict):
        raise ViewerInputError("expected a JSON object")
    base = _base_version(data)
    store = job_store(job)
    fields = check_region(job, data)
    CorrectionSet.objects.get_or_create(job=job)
    with transaction.atomic():
        correction_set = _locked_set(job, base)
        version = correction_set.bump(user, timezone.now())
        correction_set.save()
        row = Region.objects.create(job=job, version=version, author=user, **fields)
    row.author = user
    return {"version": version, "scores": job_scores(job, store), "item": region_item(row)}


def do_delete_region(job, user, region_id, data) -> dict:
    """Soft-delete a region if data["base_version"] is current: {"version", "scores", "item"}."""
    from viewer.models import CorrectionSet, Region

    base = _base_version(data if isinstance(data, dict) else {})
    store = job_store(job)
    CorrectionSet.objects.get_or_create(job=job)
    with transaction.atomic():
        correction_set = _locked_set(job, base)
        row = Region.objects.select_for_update(of=("self",)).filter(job=job, pk=region_id).first()
        if row is None:
            raise ViewerInputError(f"region {region_id} does not exist on this job")
        if row.deleted_at is not None:
            raise ViewerInputError(f"region {region_id} is already deleted")
        now = timezone.now()
        version = correction_set.bump(user, now)
        correction_set.save()
        row.deleted_version, row.deleted_by, row.deleted_at = version, user, now
        row.save(update_fields=["deleted_version", "deleted_by", "deleted_at"])
    row = Region.objects.select_related("author", "deleted_by").get(pk=row.pk)
    return {"version": version, "scores": job_scores(job, store), "item": region_item(row)}


# --- Hot spots: TPS per field -------------------------------------------------------------------

def check_hotspot_params(params) -> dict:
    field_mm2 = _number(params, "field_mm2", HOTSPOT_FIELD_MM2)
    if not 0.01 <= field_mm2 <= 100:
        raise ViewerInputError("field_mm2 must be between 0.01 and 100")
    min_cells = _number(params, "min_cells", HOTSPOT_MIN_CELLS, integer=True)
    if not 1 <= min_cells <= 100_000:
        raise ViewerInputError("min_cells must be between 1 and 100000")
    return {"field_mm2": field_mm2, "min_cells": min_cells}


def hotspot_grid(xy, labels, width: int, height: int, field_px: float, min_cells: int) -> dict:
    """TPS per square field of `field_px` level-0 px (row-major grid over the slide); None where a
    field has fewer than `min_cells` tumour cells. "top": the field with the highest TPS (ties: more cells)."""
    rows_n, cols_n = max(1, math.ceil(height / field_px)), max(1, math.ceil(width / field_px))
    if rows_n * cols_n > MAX_DENSITY_CELLS:
        raise ViewerInputError("the field is too small for this slide: the grid would have over a million cells")
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    col = np.clip((xy[:, 0] // field_px).astype(np.int64), 0, cols_n - 1)
    row = np.clip((xy[:, 1] // field_px).astype(np.int64), 0, rows_n - 1)
    cell = row * cols_n + col
    pos = np.bincount(cell[labels == LABEL_CODES["positive"]], minlength=rows_n * cols_n).reshape(rows_n, cols_n)
    neg = np.bincount(cell[labels == LABEL_CODES["negative"]], minlength=rows_n * cols_n).reshape(rows_n, cols_n)
    total = pos + neg
    valid = total >= min_cells
    value = np.divide(100.0 * pos, total, out=np.zeros(total.shape), where=total > 0)
    grid = [[round(float(value[r, c]), 2) if valid[r, c] else None for c in range(cols_n)] for r in range(rows_n)]
    top = None
    if valid.any():
        order = np.lexsort((-total.ravel(), -np.where(valid, value, -1.0).ravel()))
        r, c = divmod(int(order[0]), cols_n)
        top = {"row": r, "col": c, "tps": round(float(value[r, c]), 2), "positive": int(pos[r, c]),
               "negative": int(neg[r, c]), "x0": round(c * field_px, 1), "y0": round(r * field_px, 1),
               "x1": round(min((c + 1) * field_px, width), 1), "y1": round(min((r + 1) * field_px, height), 1)}
    return {"field_px": round(field_px, 3), "shape": [rows_n, cols_n], "min_cells": min_cells, "tps": grid,
            "positive": pos.tolist(), "negative": neg.tolist(), "valid_fields": int(valid.sum()), "top": top}


def job_hotspots(job, field_mm2: float = HOTSPOT_FIELD_MM2, min_cells: int = HOTSPOT_MIN_CELLS) -> dict:
    """The TPS hot-spot map of a job: corrected points, restricted to its regions, per field of `field_mm2`."""
    store = job_store(job)
    mpp = job.slide.mpp_x or getattr(store, "mpp", None)
    if not mpp:
        raise ViewerInputError("the slide has no pixel size (mpp): fields in mm² cannot be laid out")
    field_px = math.sqrt(field_mm2) * 1000.0 / float(mpp)
    xy, labels = corrected_points(store, correction_state(job))
    regions = job_regions(job)
    if regions:
        keep = regions.mask(xy)
        xy, labels = xy[keep], labels[keep]
    out = hotspot_grid(xy, labels, job.slide.width, job.slide.height, field_px, min_cells)
    return {"field_mm2": field_mm2, "regions_applied": bool(regions), **out}
