"""Cut a slide into overlapping tiles at a detector's working resolution.

Each tile is read from the coarsest pyramid level that is still at least as fine as the
working resolution and resized by `scale` (never upsampled from a coarser level), so the
detector always sees the same µm per pixel.  Tiles overlap by `overlap_px` working pixels
so that a nucleus near a border is seen whole by some tile; each tile also owns a "core",
and the cores partition level 0 exactly.  Two tiles can place one nucleus a fraction of a
pixel apart on either side of a core border (each sees a different context); were each to keep
only what its core holds, such a nucleus would be kept by neither.  So a tile keeps what lies in
its core widened by OWNERSHIP_BAND_PX working px on every side that borders another core, and the
merge's duplicate removal (a radius of several working px) leaves one point per nucleus.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

# A level counts as "not coarser than the working resolution" within 1 %: OpenSlide reports
# downsamples such as 3.9998 for a nominal 4x level.
LEVEL_TOLERANCE = 1.01

# How far past a shared core border a tile still keeps a detection, in working px: the pipeline
# passes at most half the merge's dedupe radius (3 µm = 6 working px at the default 0.5 µm/px), so
# that one nucleus kept by both neighbours is one point after the merge.
OWNERSHIP_BAND_PX = 1.0


@dataclass(frozen=True)
class Tile:
    index: int  # row-major position in the full grid (stable whichever tiles are skipped)
    row: int
    col: int
    level: int
    x0: int  # top-left of the read window, level-0 px (may be < 0: padded white)
    y0: int
    read_w: int  # read window size, px of `level`
    read_h: int
    scale: float  # working px per level px
    core: tuple[int, int, int, int]  # (x0, y0, x1, y1) level-0 px, half-open: what this tile owns
    level_downsample: float = 1.0
    # Level-0 size of the slide (which core sides border another core) and the band, level-0 px (a
    # fraction when tiles are upsampled), kept past such a side.  None / 0 (a tile queued before these
    # existed) keeps the exact core.
    slide_size: tuple[int, int] | None = None
    band0: float = 0.0
    # The working size every tile is resized to (tile_grid: the tile_px asked for); 0 (a tile queued
    # before this existed) is the read window times `scale`, rounded.
    out_px: int = 0

    def __post_init__(self):
        # A tile that went through JSON (a queued batch) comes back with its core as a list.
        object.__setattr__(self, "core", tuple(int(v) for v in self.core))
        if self.slide_size is not None:
            object.__setattr__(self, "slide_size", tuple(int(v) for v in self.slide_size))

    @property
    def out_w(self) -> int:
        return self.out_px or max(int(round(self.read_w * self.scale)), 1)

    @property
    def out_h(self) -> int:
        return self.out_px or max(int(round(self.read_h * self.scale)), 1)

    def to_level0(self, xy: np.ndarray) -> np.ndarray:
        """Working-resolution pixel coordinates of this tile -> level-0 px (float32).

        Pixel-centre convention: working pixel i spans level-0 [x0 + i*f, x0 + (i+1)*f)
        with f the level-0 px per working px, so its centre is x0 + (i + 0.5)*f - 0.5.
        """
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        fx = self.read_w * self.level_downsample / self.out_w
        fy = self.read_h * self.level_downsample / self.out_h
        out = np.empty_like(xy)
        out[:, 0] = self.x0 + (xy[:, 0] + 0.5) * fx - 0.5
        out[:, 1] = self.y0 + (xy[:, 1] + 0.5) * fy - 0.5
        return out.astype(np.float32)

    def owns(self, xy0: np.ndarray) -> np.ndarray:
        """Which level-0 points lie in this tile's core (by the pixel that holds them).

        Pixel i spans [i - 0.5, i + 0.5); a point off the slide (found in the white padding
        of an edge tile) belongs to no core and is dropped.
        """
        xy0 = np.asarray(xy0, np.float64).reshape(-1, 2)
        px, py = np.floor(xy0[:, 0] + 0.5), np.floor(xy0[:, 1] + 0.5)
        cx0, cy0, cx1, cy1 = self.core
        return (px >= cx0) & (px < cx1) & (py >= cy0) & (py < cy1)

    def keeps(self, xy0: np.ndarray) -> np.ndarray:
        """Which level-0 points this tile keeps: its core, widened by `band0` level-0 px on each
        side shared with another core (never past the slide's edge).

        Neighbours both keep a nucleus found on their shared border; the merge's dedupe leaves one.
        """
        if self.slide_size is None or self.band0 <= 0:
            return self.owns(xy0)
        xy0 = np.asarray(xy0, np.float64).reshape(-1, 2)
        band = float(self.band0)
        width0, height0 = self.slide_size
        cx0, cy0, cx1, cy1 = self.core
        # In continuous level-0 coordinates the core is [c0 - 0.5, c1 - 0.5) (owns: pixel i spans
        # [i - 0.5, i + 0.5)); the band widens it on shared sides only, never past the slide's edge.
        x_lo, y_lo = cx0 - 0.5 - (band if cx0 > 0 else 0.0), cy0 - 0.5 - (band if cy0 > 0 else 0.0)
        x_hi, y_hi = cx1 - 0.5 + (band if cx1 < width0 else 0.0), cy1 - 0.5 + (band if cy1 < height0 else 0.0)
        x, y = xy0[:, 0], xy0[:, 1]
        return (x >= x_lo) & (x < x_hi) & (y >= y_lo) & (y < y_hi)


def to_level0(tile: Tile, xy: np.ndarray, level_downsamples=None) -> np.ndarray:
    """Tile.to_level0, with the slide's own downsample of the tile's level when given."""
    if level_downsamples is not None:
        tile = dataclasses.replace(tile, level_downsample=float(level_downsamples[tile.level]))
    return tile.to_level0(xy)


def in_core(tile: Tile, xy0: np.ndarray) -> np.ndarray:
    """Tile.keeps: which level-0 points this tile keeps (its core and the shared-border band)."""
    return tile.keeps(xy0)


def choose_level(level_downsamples, slide_mpp: float | None, working_mpp: float | None) -> tuple[int, float]:
    """(level, scale): the coarsest level with mpp <= working mpp, and level px -> working px.

    Without an mpp on either side the detector runs on level 0 as it is (scale 1).
    """
    if not slide_mpp or not working_mpp:
        return 0, 1.0
    wanted = working_mpp / slide_mpp  # level-0 px per working px
    level = 0
    for i, ds in enumerate(level_downsamples):
        if ds <= wanted * LEVEL_TOLERANCE and ds > level_downsamples[level]:
            level = i
    scale = float(level_downsamples[level]) / wanted
    if abs(scale - 1.0) < LEVEL_TOLERANCE - 1.0:
        scale = 1.0  # a nominal-match level: reading it as is beats a 0.1 % resample
    return level, scale


def tile_grid(level_dimensions, level_downsamples, slide_mpp: float | None, working_mpp: float | None,
              tile_px: int = 512, overlap_px: int = 32, mask=None, min_tissue_fraction: float = 0.0,
              band_px: float = OWNERSHIP_BAND_PX) -> list[Tile]:
    """Tiles of `tile_px` working px whose read windows overlap by >= `overlap_px` working px.

    Every tile is exactly `tile_px` working px (what the detector and its GPU path are sized for);
    its read window extends half the overlap (rounded up, in level px) beyond its core on every side,
    so cores are about (tile_px - overlap_px) working px apart; the last row/column of
    cores ends at the slide edge and reads past it (padded white by read_tile), so every
    tile has the same size and batches stack.  With a TissueMask, tiles whose core has no
    tissue (or less than `min_tissue_fraction`) are left out.  Each tile keeps detections up to
    `band_px` working px past a core side shared with another core (a fraction of a level-0 pixel
    when the tiles are upsampled: rounding it down made it vanish there).
    """
    if tile_px <= overlap_px:
        raise ValueError(f"tile_px ({tile_px}) must exceed overlap_px ({overlap_px})")
    level, scale = choose_level(level_downsamples, slide_mpp, working_mpp)
    ds = float(level_downsamples[level])
    width0, height0 = (int(v) for v in level_dimensions[0])
    margin = int(math.ceil(overlap_px / 2 / scale))  # level px
    read = _read_size(tile_px, scale)
    core_lvl = max(read - 2 * margin, 1)
    read = core_lvl + 2 * margin
    step0 = core_lvl * ds  # level-0 px between cores
    xcuts = _cuts(width0, step0)
    ycuts = _cuts(height0, step0)
    margin0 = int(round(margin * ds))
    band0 = max(float(band_px), 0.0) * ds / scale  # level-0 px
    tiles = []
    ncols = len(xcuts) - 1
    for row, (cy0, cy1) in enumerate(zip(ycuts[:-1], ycuts[1:])):
        for col, (cx0, cx1) in enumerate(zip(xcuts[:-1], xcuts[1:])):
            if mask is not None:
                fraction = mask.fraction_in_box(cx0, cy0, cx1, cy1)
                if fraction <= 0.0 or fraction < min_tissue_fraction:
                    continue
            tiles.append(Tile(index=row * ncols + col, row=row, col=col, level=level,
                              x0=cx0 - margin0, y0=cy0 - margin0, read_w=read, read_h=read,
                              scale=scale, core=(cx0, cy0, cx1, cy1), level_downsample=ds,
                              slide_size=(width0, height0), band0=band0, out_px=tile_px))
    return tiles


def _read_size(tile_px: int, scale: float) -> int:
    """Level px to read for a `tile_px` working-px tile: the whole number nearest tile_px / scale.

    The tile is then resized to exactly tile_px (Tile.out_px), a resize within half a level pixel
    of `scale`.  Rounding the margin up and the core down separately gave 513- or 514-px tiles at many
    scanners' resolutions (0.4536, 0.4416, 0.2738 µm/px ...): the CPU detector then split each tile
    into four overlapping passes while the GPU path ran one, and their points differed.
    """
    return max(int(round(tile_px / scale)), 1)


def _cuts(size0: int, step0: float) -> list[int]:
    """Integer core borders 0 = c0 < c1 < ... = size0, `step0` apart (rounded)."""
    n = max(int(math.ceil(size0 / step0 - 1e-9)), 1)
    cuts = [min(int(round(k * step0)), size0) for k in range(n)] + [size0]
    return sorted(set(cuts))


def read_tile(slide, tile: Tile) -> np.ndarray:
    """RGB uint8 (out_h, out_w, 3) at the working resolution; transparent / outside = white."""
    from PIL import Image

    region = slide.read_region((tile.x0, tile.y0), tile.level, (tile.read_w, tile.read_h))
    if region.mode != "RGBA":
        region = region.convert("RGBA")
    white = Image.new("RGBA", region.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, region).convert("RGB")
    if (tile.out_w, tile.out_h) != rgb.size:
        # Pillow's bilinear filter widens its support when shrinking, i.e. it antialiases.
        rgb = rgb.resize((tile.out_w, tile.out_h), Image.BILINEAR)
    return np.asarray(rgb)


def batch_tiles(tiles: list[Tile], batch_size: int) -> list[list[Tile]]:
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    return [tiles[i:i + batch_size] for i in range(0, len(tiles), batch_size)]
