"""The viewer API's input parsing: query parameters and the base_version of a save."""

from __future__ import annotations

import math

from analysis.labels import LABEL_CODES, LABEL_NAMES
from viewer.choices import ExportFormat
from viewer.errors import ViewerInputError

MAX_POINTS_LIMIT = 100_000
DEFAULT_MAX_POINTS = 20_000
GRID_PX_RANGE = (16, 1 << 20)
MAX_DENSITY_CELLS = 1 << 20
HOTSPOT_FIELD_MM2 = 1.0
HOTSPOT_MIN_CELLS = 20


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


def check_hotspot_params(params) -> dict:
    field_mm2 = _number(params, "field_mm2", HOTSPOT_FIELD_MM2)
    if not 0.01 <= field_mm2 <= 100:
        raise ViewerInputError("field_mm2 must be between 0.01 and 100")
    min_cells = _number(params, "min_cells", HOTSPOT_MIN_CELLS, integer=True)
    if not 1 <= min_cells <= 100_000:
        raise ViewerInputError("min_cells must be between 1 and 100000")
    return {"field_mm2": field_mm2, "min_cells": min_cells}


def check_base_version(data) -> int:
    base = data.get("base_version")
    if isinstance(base, bool) or base is None:
        raise ViewerInputError("base_version is required: the version of the corrections you loaded")
    try:
        return int(base)
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e400 parses as infinity
        raise ViewerInputError("base_version must be an integer") from None
