"""Drawn include/exclude regions as geometry (level-0 px), by shapely: which points they keep, whether
an outline is a valid polygon, and its area."""

from __future__ import annotations

from shapely import unary_union
from shapely.geometry import MultiPoint, Polygon

from analysis.regions import Regions, covered, polygon, regions_from_pairs  # noqa: F401  re-exported
from viewer.choices import INCLUDE_REGION_KINDS

MIN_AREA_PX2 = 1.0


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


def counted_area_mm2(vertices, exclude, mpp_x: float | None, mpp_y: float | None = None) -> float | None:
    """The area in mm² of the polygon less the union of the `exclude` polygons (what of it counts); None
    without a pixel size."""
    if not mpp_x:
        return None
    shape = Polygon(vertices)
    if exclude:
        shape = shape.difference(unary_union(list(exclude)))
    return shape.area * float(mpp_x) * float(mpp_y or mpp_x) / 1e6


def region_pairs(rows) -> list[tuple[bool, list]]:
    """(include?, vertices) of the active rows: what analysis.regions and cases.results take."""
    return [(row.kind in INCLUDE_REGION_KINDS, row.vertices) for row in rows
            if getattr(row, "deleted_at", None) is None]


def regions_from_rows(rows) -> Regions:
    return regions_from_pairs(region_pairs(rows))
