"""Drawn include / exclude regions as point masks (level-0 px, by shapely): which cells they keep.

The viewer's regions (viewer.models.Region) become these for counting; the pipeline's merge reads the
slide's regions through cases.results to take its positivity cut from the cells they keep.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Polygon


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


def regions_from_pairs(pairs) -> Regions:
    """Regions from (include?, [[x, y], ...]) pairs, as cases.results.JobResults.regions gives them."""
    regions = Regions()
    for include, vertices in pairs:
        (regions.include if include else regions.exclude).append(polygon(vertices))
    return regions


def regions_fingerprint(pairs) -> str:
    """A short hash of a set of regions (order-free): "" for none. A result records the one its positivity
    cut was read inside, so a later change of the regions can be told apart."""
    if not pairs:
        return ""
    canonical = sorted(json.dumps([bool(include), [[float(x), float(y)] for x, y in vertices]])
                       for include, vertices in pairs)
    return hashlib.sha256("\n".join(canonical).encode()).hexdigest()[:16]
