"""TPS hot spots: TPS per square field of the corrected points inside the regions.

A field is a hot-spot candidate only when at least half of it lies in the area that counts (MIN_FIELD_COVERAGE):
the regions (include polygons less the exclusions) where an include region is drawn, else the slide's tissue
less any exclusions. Without it, a 1 mm² field with a 100 px² sliver of region and 20 cells in it read as the
slide's hot spot at TPS 100 %."""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict

import numpy as np

from analysis.labels import LABEL_CODES
from analysis.scoring import stated_pct
from viewer.errors import ViewerInputError
from viewer.human_layer import correction_state, job_regions
from viewer.overlay import corrected_points
from viewer.params import HOTSPOT_FIELD_MM2, HOTSPOT_MIN_CELLS, MAX_DENSITY_CELLS
from viewer.stores import job_mpp, job_store

MIN_FIELD_COVERAGE = 0.5  # share of a field in the counted area for it to be a candidate
COVERAGE_SAMPLES = 16  # per field side: the covered share is read on a 16 x 16 lattice (1/256 steps)
MAX_COVERAGE_SAMPLES = 1 << 23  # fewer per field on a grid of very many candidate fields


def field_coverage(fields: np.ndarray, cols_n: int, field_px: float, width: int, height: int, counts) -> np.ndarray:
    """Share of each field (row-major index) in the counted area: `counts(xy) -> bool` per level-0 point, or
    None (all of the slide counts). Read on a lattice of sample points; a point off the slide never counts."""
    fields = np.asarray(fields, np.int64)
    if not len(fields):
        return np.zeros(0)
    k = int(max(2, min(COVERAGE_SAMPLES, math.isqrt(max(MAX_COVERAGE_SAMPLES // len(fields), 1)))))
    offsets = (np.arange(k) + 0.5) * field_px / k
    ox, oy = np.meshgrid(offsets, offsets)
    rows, cols = np.divmod(fields, cols_n)
    x = (cols * field_px)[:, None] + ox.ravel()[None, :]
    y = (rows * field_px)[:, None] + oy.ravel()[None, :]
    xy = np.stack([x.ravel(), y.ravel()], axis=1)
    keep = (xy[:, 0] < width) & (xy[:, 1] < height)
    if counts is not None and keep.any():
        keep[keep] = counts(xy[keep])
    return keep.reshape(len(fields), k * k).mean(axis=1)


def hotspot_grid(xy, labels, width: int, height: int, field_px: float, min_cells: int, counts=None) -> dict:
    """TPS per square field of `field_px` level-0 px (row-major grid over the slide); None where a
    field has fewer than `min_cells` tumour cells or under MIN_FIELD_COVERAGE of it is in the counted area
    (`counts`, as field_coverage takes it). "top": the field with the highest TPS (ties: more cells), with its
    covered share."""
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
    enough = np.flatnonzero(total.ravel() >= min_cells)  # only these need their coverage read
    coverage = np.zeros(rows_n * cols_n)
    coverage[enough] = field_coverage(enough, cols_n, field_px, width, height, counts)
    coverage = coverage.reshape(rows_n, cols_n)
    valid = (total >= min_cells) & (coverage >= MIN_FIELD_COVERAGE)
    value = np.divide(100.0 * pos, total, out=np.zeros(total.shape), where=total > 0)
    grid = [[stated_pct(float(value[r, c])) if valid[r, c] else None for c in range(cols_n)] for r in range(rows_n)]
    top = None
    if valid.any():
        order = np.lexsort((-total.ravel(), -np.where(valid, value, -1.0).ravel()))
        r, c = divmod(int(order[0]), cols_n)
        top = {"row": r, "col": c, "tps": stated_pct(float(value[r, c])), "positive": int(pos[r, c]),
               "negative": int(neg[r, c]), "covered": round(float(coverage[r, c]), 3),
               "x0": round(c * field_px, 1), "y0": round(r * field_px, 1),
               "x1": round(min((c + 1) * field_px, width), 1), "y1": round(min((r + 1) * field_px, height), 1)}
    return {"field_px": round(field_px, 3), "shape": [rows_n, cols_n], "min_cells": min_cells,
            "min_coverage": MIN_FIELD_COVERAGE, "tps": grid, "positive": pos.tolist(), "negative": neg.tolist(),
            "valid_fields": int(valid.sum()), "top": top}


# ---- the slide's tissue (the counted area without an include region) --------------------------------------
_tissue: OrderedDict = OrderedDict()
_tissue_lock = threading.Lock()


def slide_tissue(slide):
    """(TissueMask, "") of the slide's pixels, kept in a small cache by (path, mtime); (None, why) when the
    file cannot be read. The analysis does not keep its mask, so it is read again here (one low level)."""
    import openslide

    from analysis.tissue import tissue_mask
    from slideio.slidefile import SlideError, open_slide

    try:
        path = str(slide.path)
        key = (path, os.stat(path).st_mtime_ns)
        with _tissue_lock:
            if key in _tissue:
                _tissue.move_to_end(key)
                return _tissue[key], ""
        handle = open_slide(path)
        try:
            mask = tissue_mask(handle, slide_mpp=slide.mpp_x)
        finally:
            handle.close()
    except (SlideError, OSError, ValueError, openslide.OpenSlideError) as exc:
        return None, f"the slide's tissue could not be read ({exc})"
    with _tissue_lock:
        _tissue[key] = mask
        while len(_tissue) > 8:
            _tissue.popitem(last=False)
    return mask, ""


def on_mask(tissue, xy: np.ndarray) -> np.ndarray:
    """Which level-0 points fall on tissue pixels of the (coarse) mask."""
    h, w = tissue.mask.shape
    r = np.clip((xy[:, 1] / tissue.downsample).astype(np.int64), 0, h - 1)
    c = np.clip((xy[:, 0] / tissue.downsample).astype(np.int64), 0, w - 1)
    return tissue.mask[r, c]


def counted_area(job, regions):
    """(counts(xy) -> bool, {"basis", "note"}): the area a field must lie in, and what it was read from."""
    if regions.include:  # the pathologist's tumour area: tissue is not consulted
        return regions.mask, {"basis": "regions", "note": ""}
    tissue, note = slide_tissue(job.slide)
    basis = "tissue" if tissue is not None else "slide"
    if regions.exclude:
        basis += " less exclusions"

    def counts(xy):
        keep = regions.mask(xy) if regions else np.ones(len(xy), bool)
        if tissue is not None:
            keep &= on_mask(tissue, xy)
        return keep

    return counts, {"basis": basis, "note": note}


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
    counts, coverage = counted_area(job, regions)
    out = hotspot_grid(xy, labels, job.slide.width, job.slide.height, field_px, min_cells, counts)
    return {"field_mm2": field_mm2, "regions_applied": bool(regions), "coverage": coverage, **out}
