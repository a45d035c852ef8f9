"""Drawn include/exclude regions as geometry (level-0 px), by shapely: which points they keep, whether
an outline is a valid polygon, and its area."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Polygon

from viewer.choices import INCLUDE_REGION_KINDS

MIN_AREA_PX2 = 1.0


@dataclass
class Regions:
    """Active drawn regions of a slide: include polygons (tumour area) and exclude polygons."""

    include: list[Polygon] = field(default_factory=list)
    exclude: list[Polygon] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def mask(self, xy: np.ndarray) -> np.ndarray:
        """Points that count: inside some include polygon (any point when there is none) and
        outside every exclude polygon. A point on an outline is inside it."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        keep = np.zeros(len(xy), bool) if self.include else np.ones(len(xy), bool)
        for poly in self.include:
            keep |= covered(poly, xy)
        for poly in self.exclude:
            if keep.any():
                keep &= ~covered(poly, xy)
        return keep


def polygon(vertices) -> Polygon:
    """The polygon of [[x, y], ...] level-0 px (unclosed), prepared for repeated point tests."""
    poly = Polygon(np.asarray(vertices, np.float64).reshape(-1, 2))
    shapely.prepare(poly)
    return poly


def covered(poly: Polygon, xy: np.ndarray) -> np.ndarray:
    """Which points lie inside `poly` or on its outline; only those in its bounding box are tested."""
    x0, y0, x1, y1 = poly.bounds
    near = np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
    out = np.zeros(len(xy), bool)
    out[near] = shapely.intersects_xy(poly, xy[near, 0], xy[near, 1])
    return out


def outline_problem(vertices) -> str | None:
    """Why these vertices (distinct, at least 3) do not make a region, or None."""
    if MultiPoint(vertices).convex_hull.area < MIN_AREA_PX2:
        return "the region has no area (its vertices are on one line)"
    poly = Polygon(vertices)
    if not poly.is_valid:  # edges crossing or touching each other
        return "the region's outline crosses itself; draw it without crossing edges"
    if poly.area < MIN_AREA_PX2:
        return "the region has no area (its vertices are on one line)"
    return None


def area_mm2(vertices, mpp_x: float | None, mpp_y: float | None = None) -> float | None:
    """The polygon's area in mm² at the given pixel size (µm/px); None without one."""
    if not mpp_x:
        return None
    return Polygon(vertices).area * float(mpp_x) * float(mpp_y or mpp_x) / 1e6


def regions_from_rows(rows) -> Regions:
    regions = Regions()
    for row in rows:
        if getattr(row, "deleted_at", None) is not None:
            continue
        (regions.include if row.kind in INCLUDE_REGION_KINDS else regions.exclude).append(polygon(row.vertices))
    return regions
