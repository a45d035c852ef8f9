"""Drawn include/exclude regions as geometry (level-0 px): which points they keep, and the check
that an outline does not cross itself."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer.choices import INCLUDE_REGION_KINDS


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


def segments_cross(poly: np.ndarray) -> bool:
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
