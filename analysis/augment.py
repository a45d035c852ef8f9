"""Training augmentations applied identically to an image and its point annotations.

Points are (x, y) float arrays in pixel coordinates with pixel centres at
integers (x = column, y = row), the convention of ``postprocess.PointSet``.
Geometric transforms map every point to the pixel its nucleus lands on, so a
click stays on its nucleus; labels stay aligned with their points.  Pure numpy
with an explicit ``np.random.Generator``, so a training run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import stains


@dataclass
class Augmented:
    rgb: np.ndarray  # (H, W, 3) uint8
    xy: np.ndarray  # (N, 2) float64
    labels: np.ndarray  # (N,) int64
    # (N,) bool: the point's pixel is in the crop.  False only for a point kept by `reach`: its centre
    # lies outside (its coordinates too), but a disc around it may still cover crop pixels.
    inside: np.ndarray | None = None  # None: all True

    def __post_init__(self):
        if self.inside is None:
            self.inside = np.ones(len(self.labels), bool)


def _xy(xy) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2)


def hflip(rgb: np.ndarray, xy) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: column c goes to W - 1 - c."""
    out = _xy(xy).copy()
    out[:, 0] = rgb.shape[1] - 1 - out[:, 0]
    return np.ascontiguousarray(rgb[:, ::-1]), out


def rot90(rgb: np.ndarray, xy, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rotate k quarter turns counter-clockwise, as np.rot90 on the first two axes."""
    out = _xy(xy).copy()
    for _ in range(k % 4):
        # np.rot90 sends pixel (row r, col c) of a width-W image to (row W-1-c, col r).
        width = rgb.shape[1]
        out = np.stack([out[:, 1], width - 1 - out[:, 0]], axis=1)
        rgb = np.rot90(rgb)
    return np.ascontiguousarray(rgb), out


def crop(rgb: np.ndarray, xy, labels, x0: int, y0: int, height: int, width: int, fill: int = 255,
         reach: float = 0.0) -> Augmented:
    """Window [y0, y0+height) x [x0, x0+width); areas beyond the image are filled (white = glass).

    A point is kept when the pixel it falls on (nearest centre) is inside the
    window: a nucleus cut by the border keeps its click only if the click is in.
    reach > 0 also keeps, with inside False, each point outside but at most reach pixels from
    the window's outer edge: one whose disc of that radius may still overlap the window.
    """
    xy, labels = _xy(xy), np.asarray(labels).ravel()
    out = np.full((height, width, 3), fill, dtype=np.uint8)
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + height, rgb.shape[0]), min(x0 + width, rgb.shape[1])
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    shifted = xy - np.array([x0, y0], dtype=np.float64)
    pixel = np.floor(shifted + 0.5)
    inside = (pixel[:, 0] >= 0) & (pixel[:, 0] < width) & (pixel[:, 1] >= 0) & (pixel[:, 1] < height)
    # Distance to the outer edge (pixel area, not pixel centres): it scales exactly with a later
    # rescale, so a point kept here is kept whatever the crop is resized to.
    gap = np.maximum(np.abs(shifted - (np.array([width, height]) - 1) / 2) - np.array([width, height]) / 2, 0)
    kept = inside | ((gap**2).sum(axis=1) <= reach**2) if reach > 0 else inside
    return Augmented(out, shifted[kept], labels[kept].astype(np.int64), inside[kept])


def random_crop(rgb: np.ndarray, xy, labels, size: int, rng: np.random.Generator, reach: float = 0.0) -> Augmented:
    """A size x size window at a random offset; images smaller than size are padded with white.

    reach: as in crop."""
    height, width = rgb.shape[:2]
    y0 = int(rng.integers(0, height - size + 1)) if height > size else -((size - height) // 2)
    x0 = int(rng.integers(0, width - size + 1)) if width > size else -((size - width) // 2)
    return crop(rgb, xy, labels, x0, y0, size, size, reach=reach)


def rescale_to(rgb: np.ndarray, xy, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize a square image to size x size; points follow with the pixel-centre convention."""
    from skimage.transform import resize

    scale = size / rgb.shape[0]
    out = resize(rgb, (size, size), order=1, preserve_range=True, anti_aliasing=scale < 1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), (_xy(xy) + 0.5) * scale - 0.5


def augment(
    rgb: np.ndarray,
    xy,
    labels,
    rng: np.random.Generator,
    crop_size: int | None = None,
    stain_sigma: float = 0.05,
    stain_bias: float = 0.05,
    scale_jitter: float = 0.0,
    reach: float = 0.0,
) -> Augmented:
    """Random crop (first, so later steps touch fewer pixels), D4 flips/rotations, HED jitter.

    scale_jitter = j > 0 also rescales the crop by a factor drawn log-uniformly from
    [1/(1+j), 1+j] (the output is still crop_size square).

    The eight flip/rotation combinations are the symmetries of a square: tissue
    has no preferred orientation.  stain_sigma = stain_bias = 0 skips the jitter.

    reach > 0 (output pixels) also keeps the points outside the crop whose disc of that radius may
    still overlap it, marked inside = False (see crop); it draws nothing from rng, so the image and
    the points inside are those reach = 0 gives.
    """
    labels = np.asarray(labels).ravel().astype(np.int64)
    if crop_size is not None and scale_jitter > 0:
        # Pixel sizes of real sources are estimates (±20 %) and scanners differ: show each
        # nucleus at a random size around its nominal one.  Crop the window that will fill
        # crop_size after resizing, so only crop_size² pixels are resampled.
        scale = float(np.exp(rng.uniform(-np.log1p(scale_jitter), np.log1p(scale_jitter))))
        source = max(int(round(crop_size / scale)), 8)
        sample = random_crop(rgb, xy, labels, source, rng, reach=reach * source / crop_size)
        (rgb, xy), labels, inside = rescale_to(sample.rgb, sample.xy, crop_size), sample.labels, sample.inside
    elif crop_size is not None:
        sample = random_crop(rgb, xy, labels, crop_size, rng, reach=reach)
        rgb, xy, labels, inside = sample.rgb, sample.xy, sample.labels, sample.inside
    else:
        inside = None
    xy = _xy(xy)
    if rng.random() < 0.5:
        rgb, xy = hflip(rgb, xy)
    rgb, xy = rot90(rgb, xy, int(rng.integers(0, 4)))
    if stain_sigma > 0 or stain_bias > 0:
        rgb = stains.hed_jitter(rgb, rng, sigma=stain_sigma, bias=stain_bias)
    return Augmented(np.ascontiguousarray(rgb), xy, labels, inside)
