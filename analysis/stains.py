"""Colour deconvolution for haematoxylin-DAB (H-DAB) brightfield IHC.

Convention used throughout the ``analysis`` package: optical density (OD) is
**base-10**, ``OD = -log10(I / I0)`` with ``I0`` the (white) background
intensity, so Beer-Lambert reads ``I = I0 * 10 ** (-sum_i c_i * v_i)`` where
``v_i`` is the unit RGB OD vector of stain ``i`` and ``c_i`` its concentration
(in OD units).  Base 10 is what QuPath/ImageJ report, so thresholds expressed
here (e.g. "haematoxylin OD > 0.1") carry over from those tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Ruifrok & Johnston (2001), Anal Quant Cytol Histol 23:291 - the "H DAB"
# vectors also used by ImageJ's Colour Deconvolution plugin and QuPath.
_RJ_HEMATOXYLIN = (0.650, 0.704, 0.286)
_RJ_DAB = (0.268, 0.570, 0.776)

# Intensities are clipped to >= 1 before the log, so no pixel exceeds this OD
# (-log10(1/255)); keeps everything finite for black/saturated pixels.
_MIN_INTENSITY = 1.0


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    if n == 0:
        raise ValueError("stain vector must be non-zero")
    return v / n


@dataclass(frozen=True)
class StainVectors:
    """RGB optical-density unit vectors of the two stains plus a residual.

    ``residual`` defaults to the normalised cross product of the two stains
    (as scikit-image's ``hdx_from_rgb`` does): being orthogonal to both, it
    keeps the 3x3 matrix invertible and soaks up whatever H and DAB cannot
    explain without leaking into them.
    """

    haematoxylin: tuple = _RJ_HEMATOXYLIN
    dab: tuple = _RJ_DAB
    residual: tuple | None = None
    # Cached matrices, derived in __post_init__ (not part of equality).
    matrix: np.ndarray = field(init=False, repr=False, compare=False)
    inverse: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        h, d = _unit(self.haematoxylin), _unit(self.dab)
        if self.residual is None:
            r = np.cross(h, d)
            # The cross product's sign is arbitrary; orient it so it mostly
            # absorbs (positive OD), like a real stain would.
            r = -r if r.sum() < 0 else r
        else:
            r = np.asarray(self.residual, float)
        r = _unit(r)
        m = np.stack([h, d, r])  # rows = stains; od_rgb = conc @ m
        object.__setattr__(self, "haematoxylin", tuple(h))
        object.__setattr__(self, "dab", tuple(d))
        object.__setattr__(self, "residual", tuple(r))
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "inverse", np.linalg.inv(m))


DEFAULT_VECTORS = StainVectors()


def rgb_to_od(rgb: np.ndarray, background: float = 255.0) -> np.ndarray:
    """uint8 RGB -> float32 base-10 optical density (same shape)."""
    i = np.maximum(np.asarray(rgb, dtype=np.float32), _MIN_INTENSITY)
    return (-np.log10(i / np.float32(background))).astype(np.float32)


def od_to_rgb(od: np.ndarray, background: float = 255.0) -> np.ndarray:
    """Base-10 optical density -> uint8 RGB (rounded, clipped)."""
    i = np.float32(background) * np.power(np.float32(10.0), -np.asarray(od, np.float32))
    return np.clip(np.rint(i), 0, 255).astype(np.uint8)


def concentrations(rgb: np.ndarray, vectors: StainVectors = DEFAULT_VECTORS,
                   background: float = 255.0) -> np.ndarray:
    """Per-pixel stain concentrations (H, DAB, residual), float32 (..., 3)."""
    od = rgb_to_od(rgb, background)
    return (od @ vectors.inverse.astype(np.float32)).astype(np.float32)


def deconvolve(rgb: np.ndarray, vectors: StainVectors = DEFAULT_VECTORS,
               background: float = 255.0) -> tuple[np.ndarray, np.ndarray]:
    """Return (haematoxylin_od, dab_od) float32 maps of shape (H, W)."""
    c = concentrations(rgb, vectors, background)
    return c[..., 0], c[..., 1]


def compose(h_conc: np.ndarray, dab_conc: np.ndarray,
            vectors: StainVectors = DEFAULT_VECTORS, background: float = 255.0,
            residual_conc: np.ndarray | None = None) -> np.ndarray:
    """Beer-Lambert mixing of stain concentrations into uint8 RGB."""
    h = np.asarray(h_conc, np.float32)
    d = np.asarray(dab_conc, np.float32)
    m = vectors.matrix.astype(np.float32)
    od = h[..., None] * m[0] + d[..., None] * m[1]
    if residual_conc is not None:
        od += np.asarray(residual_conc, np.float32)[..., None] * m[2]
    return od_to_rgb(od, background)


def hed_jitter(rgb: np.ndarray, rng: np.random.Generator, sigma: float = 0.05,
               bias: float = 0.05, vectors: StainVectors = DEFAULT_VECTORS) -> np.ndarray:
    """Stain augmentation (Tellez et al. 2018): per-stain scale and shift.

    Each of the H, DAB and residual concentrations becomes
    ``c * U(1-sigma, 1+sigma) + U(-bias, bias)``; the image is then re-composed.
    Working in concentration space changes staining intensity realistically
    (a weaker DAB keeps its hue), unlike plain RGB colour jitter.
    """
    c = concentrations(rgb, vectors)
    alpha = rng.uniform(1 - sigma, 1 + sigma, size=3).astype(np.float32)
    beta = rng.uniform(-bias, bias, size=3).astype(np.float32)
    c = c * alpha + beta
    return compose(c[..., 0], c[..., 1], vectors, residual_conc=c[..., 2])
