"""Where on a slide the tissue is: a low-resolution boolean mask.

Read one low pyramid level (or shrink level 0 chunk by chunk on a one-level slide), turn it
into optical density, and keep what is clearly darker than glass: Otsu on the summed OD,
never below a floor that glass and sensor noise stay under.  Otsu runs on log(OD): OD spans
decades (glass 0.03, faint stroma 0.1, nuclei 1+), and on a linear scale the dark nuclei pull
the threshold up into the faint tissue.  Holes are filled (a gland
lumen is still "inside" the tissue) and specks smaller than a minimum physical area are
dropped.  Transparent (alpha 0) and black no-data pixels count as background.
openslide is never imported here: the caller passes an open handle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .stains import rgb_to_od

# Glass plus sensor noise sums to ~0.03-0.06 OD over R+G+B; faint stroma is ~0.08 and up.
# Otsu on a blank slide would split the noise; this floor makes it find nothing instead.
MIN_TISSUE_OD = 0.07
# Scanners mark unscanned areas opaque black in some formats; real stain is never this dark
# in all three channels at once, so such pixels are treated as "no data", not as tissue.
NO_DATA_MAX = 12
# A mask pixel is background unless at least half of the pixels it stands for hold data.
MIN_VALID_FRACTION = 0.5
CHUNK_PX = 2048  # level pixels per read: bounded memory on a one-level 100k-px slide


@dataclass
class TissueMask:
    mask: np.ndarray  # (h, w) bool, True = tissue
    downsample: float  # level-0 px per mask px
    level: int  # pyramid level that was read
    mpp: float | None  # level-0 µm/px of the slide; None when unknown
    threshold_od: float | None = None  # OD sum used; None when the slide looked blank
    # The reduced image the mask came from, kept on request (keep_image) for slide QC.
    rgb: np.ndarray | None = field(default=None, repr=False)
    valid: np.ndarray | None = field(default=None, repr=False)

    @property
    def area_mm2(self) -> float | None:
        if self.mpp is None:
            return None
        return float(self.mask.sum()) * (self.mpp * self.downsample) ** 2 / 1e6

    def fraction_in_box(self, x0: float, y0: float, x1: float, y1: float) -> float:
        """Share of tissue under the level-0 box [x0, x1) x [y0, y1).

        Every mask pixel the box touches counts whole, so a box at the edge of tissue is
        never reported empty because of the mask's coarse grid.
        """
        h, w = self.mask.shape
        c0, r0 = max(int(math.floor(x0 / self.downsample)), 0), max(int(math.floor(y0 / self.downsample)), 0)
        c1, r1 = min(int(math.ceil(x1 / self.downsample)), w), min(int(math.ceil(y1 / self.downsample)), h)
        if c1 <= c0 or r1 <= r0:
            return 0.0
        return float(self.mask[r0:r1, c0:c1].mean())


def mpp_from_properties(slide) -> float | None:
    """Level-0 µm/px from OpenSlide's standard property, None when absent or implausible."""
    from slideio.slidefile import plausible_mpp

    return plausible_mpp(slide.properties.get("openslide.mpp-x"))


def tissue_mask(slide, target_mpp: float = 10.0, downsample: float | None = None, max_side: int = 2048,
                slide_mpp: float | None = None, min_object_um2: float = 2000.0, min_object_px: int = 16,
                closing_um: float = 20.0, keep_image: bool = False) -> TissueMask:
    """Tissue mask of an open slide handle (OpenSlide, ImageSlide or OmeTiffSlide).

    The mask resolution is `downsample` level-0 px per mask px when given, otherwise
    `target_mpp` (needs the slide's level-0 mpp: `slide_mpp`, else OpenSlide's property;
    without one the long side aims at 1024 px), and
    never finer than `max_side` px on the long side.  `min_object_um2` (or `min_object_px`
    when the mpp is unknown) and `closing_um` are physical so a mask means the same at any
    scan resolution.  `keep_image` keeps the reduced image on the result (for analysis.slide_qc).
    """
    mpp = slide_mpp if slide_mpp is not None else mpp_from_properties(slide)
    width0, height0 = slide.level_dimensions[0]
    if downsample is None:
        downsample = target_mpp / mpp if mpp else max(width0, height0) / 1024
    downsample = max(float(downsample), max(width0, height0) / max_side, 1.0)

    level = _coarsest_level_at_most(slide.level_downsamples, downsample)
    level_ds = float(slide.level_downsamples[level])
    factor = max(int(round(downsample / level_ds)), 1)
    rgb, valid = _read_reduced(slide, level, factor)
    mask_ds = level_ds * factor

    od = rgb_to_od(rgb).sum(axis=2)
    # No-data areas join the histogram as clean glass: a slide cropped to its tissue with
    # transparent surroundings still has a background class for Otsu to separate from.
    od[~valid] = 0.0
    threshold = _threshold(od.ravel())
    result = TissueMask(np.zeros(od.shape, bool), mask_ds, level, mpp, threshold)
    if keep_image:
        result.rgb, result.valid = rgb, valid
    if threshold is None:
        return result
    mask = (od > threshold) & valid
    px_um = mpp * mask_ds if mpp else None
    radius = int(round(closing_um / px_um)) if px_um else 0
    if radius >= 1:
        mask = _close(mask, radius)
    mask = ndimage.binary_fill_holes(mask)
    min_px = int(math.ceil(min_object_um2 / px_um ** 2)) if px_um else min_object_px
    if min_px > 1:
        from skimage.morphology import remove_small_objects

        mask = remove_small_objects(mask, max_size=min_px - 1)
    result.mask = mask
    return result


def _coarsest_level_at_most(level_downsamples, downsample: float) -> int:
    """The coarsest level not coarser than wanted: reducing further is exact, upsampling is not."""
    best = 0
    for i, ds in enumerate(level_downsamples):
        if ds <= downsample * 1.01 and ds >= level_downsamples[best]:
            best = i
    return best


def _read_reduced(slide, level: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole level shrunk by an integer factor: (rgb uint8, valid bool) per output pixel.

    Read in chunks so that a one-level slide never has to fit in memory at full size.
    No-data pixels are counted as white, and a block is valid when most of it has data.
    """
    width, height = slide.level_dimensions[level]
    level_ds = float(slide.level_downsamples[level])
    out_w, out_h = -(-width // factor), -(-height // factor)
    rgb_sum = np.zeros((out_h, out_w, 3), np.float64)
    valid_sum = np.zeros((out_h, out_w), np.float64)
    step = max(CHUNK_PX // factor, 1) * factor  # chunks hold whole blocks
    for y in range(0, height, step):
        for x in range(0, width, step):
            w, h = min(step, width - x), min(step, height - y)
            region = np.asarray(slide.read_region((int(round(x * level_ds)), int(round(y * level_ds))), level, (w, h)))
            if region.ndim == 2:
                region = np.stack([region] * 3, axis=2)
            rgb = np.array(region[..., :3])
            data = region[..., 3] > 0 if region.shape[2] == 4 else np.ones((h, w), bool)
            data &= rgb.max(axis=2) > NO_DATA_MAX
            rgb[~data] = 255
            r0, c0 = y // factor, x // factor
            block_rgb, block_valid = _block_sums(rgb, data, factor)
            rgb_sum[r0:r0 + block_rgb.shape[0], c0:c0 + block_rgb.shape[1]] = block_rgb
            valid_sum[r0:r0 + block_rgb.shape[0], c0:c0 + block_rgb.shape[1]] = block_valid
    # Blocks cut by the slide's right/bottom edge: missing pixels are no data (white).
    counts = np.full((out_h, out_w), float(factor * factor))
    rgb_mean = rgb_sum / counts[..., None]
    cover_rows = np.minimum(factor, height - np.arange(out_h) * factor)
    cover_cols = np.minimum(factor, width - np.arange(out_w) * factor)
    cover = np.outer(cover_rows, cover_cols).astype(float)
    rgb_mean += 255.0 * (counts - cover)[..., None] / counts[..., None]
    valid = valid_sum / counts >= MIN_VALID_FRACTION
    return np.clip(np.rint(rgb_mean), 0, 255).astype(np.uint8), valid


def _block_sums(rgb: np.ndarray, data: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = data.shape
    bh, bw = -(-h // factor), -(-w // factor)
    if (bh * factor, bw * factor) != (h, w):
        # Padding pixels add nothing here; the caller accounts for them as white.
        pad = ((0, bh * factor - h), (0, bw * factor - w))
        rgb = np.pad(rgb, pad + ((0, 0),))
        data = np.pad(data, pad)
    rgb_sum = rgb.reshape(bh, factor, bw, factor, 3).sum(axis=(1, 3), dtype=np.uint32)
    valid_sum = data.reshape(bh, factor, bw, factor).sum(axis=(1, 3), dtype=np.uint32)
    return rgb_sum, valid_sum


def _threshold(od_values: np.ndarray) -> float | None:
    """Otsu on log10 of the OD sum, never below MIN_TISSUE_OD; None when nothing is above it."""
    from skimage.filters import threshold_otsu

    if od_values.size == 0 or float(od_values.max()) <= MIN_TISSUE_OD:
        return None
    log_od = np.log10(np.maximum(od_values, 1e-3))
    if float(np.ptp(log_od)) < 1e-6:  # one value everywhere, and above the floor
        return MIN_TISSUE_OD
    return max(float(10 ** threshold_otsu(log_od)), MIN_TISSUE_OD)


def _close(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary closing with a disk; padded so tissue touching the border is not eroded."""
    from skimage.morphology import disk

    padded = np.pad(mask, radius)
    closed = ndimage.binary_closing(padded, structure=disk(radius))
    return closed[radius:-radius, radius:-radius]


# --- Fine (per-pixel) tissue mask of one tile: detections never fall on glass --------------------
# The slide mask above is coarse (10 µm/px, holes filled): a tile that touches tissue is read
# whole, and a detector can put points on its glass.  Each tile's own pixels decide instead.

_OD_LUT = (-np.log10(np.maximum(np.arange(256, dtype=np.float32), 1.0) / 255.0)).astype(np.float32)
FINE_STEP = 2  # sample every 2nd tile pixel (1 µm at 0.5 µm/px) ...
FINE_BLOCK = 2  # ... and average 2x2 samples: one mask cell per 4x4 tile px (2 µm)
FINE_GROW = 1  # cells: a point on a nucleus' rim still sees the nucleus


def fine_tissue(rgb: np.ndarray, threshold_od: float | None = None) -> np.ndarray:
    """Tissue mask of one tile, one cell per FINE_STEP*FINE_BLOCK tile px: a cell is tissue when
    its mean summed OD is above the slide's tissue threshold (never below MIN_TISSUE_OD), or
    within FINE_GROW cells of such a cell.  Black no-data pixels are glass."""
    sample = np.asarray(rgb)[FINE_STEP // 2::FINE_STEP, FINE_STEP // 2::FINE_STEP]
    r, g, b = sample[..., 0], sample[..., 1], sample[..., 2]
    od = _OD_LUT[r] + _OD_LUT[g] + _OD_LUT[b]  # per channel: 4x faster than a gather on (h, w, 3)
    od[(r <= NO_DATA_MAX) & (g <= NO_DATA_MAX) & (b <= NO_DATA_MAX)] = 0.0
    h, w = od.shape
    bh, bw = h // FINE_BLOCK, w // FINE_BLOCK
    if bh * FINE_BLOCK != h or bw * FINE_BLOCK != w:  # odd edge: repeat the last row/column
        bh, bw = -(-h // FINE_BLOCK), -(-w // FINE_BLOCK)
        od = np.pad(od, ((0, bh * FINE_BLOCK - h), (0, bw * FINE_BLOCK - w)), mode="edge")
    means = od.reshape(bh, FINE_BLOCK, bw, FINE_BLOCK).mean(axis=(1, 3))
    cells = means > max(threshold_od or 0.0, MIN_TISSUE_OD)
    if FINE_GROW:
        cells = ndimage.maximum_filter(cells, size=2 * FINE_GROW + 1)
    return cells


def on_tissue(rgb: np.ndarray, xy: np.ndarray, threshold_od: float | None = None) -> np.ndarray:
    """Which points (x, y in the tile's pixels) lie on tissue of that tile: bool (N,)."""
    return on_tissue_cells(fine_tissue(rgb, threshold_od), xy)


def on_tissue_cells(cells: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """`on_tissue` with the tile's fine_tissue mask already computed."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    if not len(xy):
        return np.zeros(0, bool)
    cell = FINE_STEP * FINE_BLOCK
    col = np.clip(np.floor(xy[:, 0] / cell).astype(np.int64), 0, cells.shape[1] - 1)
    row = np.clip(np.floor(xy[:, 1] / cell).astype(np.int64), 0, cells.shape[0] - 1)
    return cells[row, col]
