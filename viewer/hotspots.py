"""TPS hot spots: TPS per square field of the corrected points inside the regions."""

from __future__ import annotations

import math

import numpy as np

from analysis.labels import LABEL_CODES
from analysis.scoring import stated_pct
from viewer.errors import ViewerInputError
from viewer.human_layer import correction_state, job_regions
from viewer.overlay import corrected_points
from viewer.params import HOTSPOT_FIELD_MM2, HOTSPOT_MIN_CELLS, MAX_DENSITY_CELLS
from viewer.stores import job_mpp, job_store


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
    grid = [[stated_pct(float(value[r, c])) if valid[r, c] else None for c in range(cols_n)] for r in range(rows_n)]
    top = None
    if valid.any():
        order = np.lexsort((-total.ravel(), -np.where(valid, value, -1.0).ravel()))
        r, c = divmod(int(order[0]), cols_n)
        top = {"row": r, "col": c, "tps": stated_pct(float(value[r, c])), "positive": int(pos[r, c]),
               "negative": int(neg[r, c]), "x0": round(c * field_px, 1), "y0": round(r * field_px, 1),
               "x1": round(min((c + 1) * field_px, width), 1), "y1": round(min((r + 1) * field_px, height), 1)}
    return {"field_px": round(field_px, 3), "shape": [rows_n, cols_n], "min_cells": min_cells, "tps": grid,
            "positive": pos.tolist(), "negative": neg.tolist(), "valid_fields": int(valid.sum()), "top": top}


def job_hotspots(job, field_mm2: float = HOTSPOT_FIELD_MM2, min_cells: int = HOTSPOT_MIN_CELLS) -> dict:
    """The TPS hot-spot map of a job: corrected points, restricted to its regions, per field of `field_mm2`."""
    store = job_store(job)
    mpp = job_mpp(job, store)
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
