"""Per-image H-DAB stain estimation and stain normalisation (scanner colour robustness).

Two scans of one section from different scanners differ in colour: the stain
hues (each scanner's spectral response), a white-balance cast on the glass and
an overall optical-density scale (exposure / gamma).  Deconvolving both with the
fixed Ruifrok-Johnston vectors (analysis.stains) then leaks haematoxylin into
DAB and shifts DAB ODs, which moves positive cells across a fixed DAB threshold.
This module estimates each image's own stains and maps it onto the reference
colours, so that downstream thresholds see comparable concentrations.

Method (pure numpy):

* background (glass) per channel: a high percentile of each channel among the
  brightest pixels (:func:`estimate_background`), so a colour cast on the glass
  becomes OD 0 again;
* stain vectors: Macenko et al. (2009), "A method for normalizing histology
  slides for quantitative analysis", ISBI 2009, pp. 1107-1110 - OD of tissue
  pixels (OD norm above a threshold), the plane of the two largest principal
  directions, robust (alpha / 100 - alpha percentile) extreme angles in that
  plane -> two unit vectors; the "more blue" one (absorbs red more than blue)
  is haematoxylin, the other DAB;
* sanity: every estimate is compared with the defaults.  Too few tissue pixels
  -> the default vectors; a vector within ``max_angle_deg`` of its default is
  kept, one between ``max_angle_deg`` and ``reject_angle_deg`` is clamped to
  ``max_angle_deg`` along the great circle towards the estimate, one further
  away -> the default.  DAB additionally needs enough DAB-stained pixels: a
  (nearly) DAB-free field - common for PD-L1 negative tissue - cannot define a
  DAB direction, so it keeps the default DAB vector;
* normalisation: deconvolve with the estimated vectors and background, optionally
  rescale concentrations (one common factor for all stains, from the
  haematoxylin percentile, because exposure/gamma scale every OD alike and
  haematoxylin is present in every field while DAB is what we want to measure),
  recompose with the reference vectors on a white (255) background.

OD is base 10 (analysis.stains convention).  Everything here is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import stains
from .stains import DEFAULT_VECTORS, StainVectors

# Defaults, documented where used.
OD_THRESHOLD = 0.15        # OD norm (base 10) above which a pixel counts as stained tissue
ALPHA = 1.0                # Macenko's robust extreme-angle percentile
MAX_ANGLE_DEG = 12.0       # an estimate further than this from its default is clamped
REJECT_ANGLE_DEG = 25.0    # ... and further than this rejected (default used)
MIN_SEPARATION_DEG = 12.0  # H and DAB estimates closer than this: not two stains
MIN_PIXELS = 500           # fewer stained pixels: default vectors
MIN_DAB_FRACTION = 0.01    # DAB-stained pixels (conc > DAB_CONC) among stained pixels
DAB_CONC = 0.15
MAX_SAMPLES = 200_000      # pixels used for the SVD / percentiles (fixed-seed subsample)
H_PERCENTILE = 99.0        # for the optional concentration scale


@dataclass
class StainEstimate:
    """Result of :func:`estimate_stains`; ``vectors`` plugs into analysis.stains / ClassicParams."""

    vectors: StainVectors
    background: np.ndarray          # (3,) float, per-channel white level used for OD
    h_percentile: float             # H concentration at H_PERCENTILE over stained pixels (NaN if none)
    n_tissue: int                   # stained pixels used
    angle_h_deg: float              # angle of the returned H vector from the default
    angle_dab_deg: float
    fallbacks: list = field(default_factory=list)  # reasons defaults/clamping were used

    @property
    def used_defaults(self) -> bool:
        return bool(self.fallbacks)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def angle_deg(a, b) -> float:
    """Angle between two (not necessarily unit) vectors, degrees."""
    c = float(np.clip(_unit(a) @ _unit(b), -1.0, 1.0))
    return float(np.degrees(np.arccos(c)))


def _slerp_towards(start, target, angle: float) -> np.ndarray:
    """Unit vector ``angle`` degrees from ``start`` on the great circle towards ``target``."""
    s, t = _unit(start), _unit(target)
    perp = t - (t @ s) * s
    n = np.linalg.norm(perp)
    if n < 1e-12:
        return s
    a = np.radians(angle)
    return np.cos(a) * s + np.sin(a) * perp / n


def estimate_background(rgb: np.ndarray, percentile: float = 99.0, bright_fraction: float = 0.05,
                        min_level: float = 180.0) -> np.ndarray:
    """Per-channel white level (3,) from the brightest pixels.

    Takes the ``bright_fraction`` brightest pixels (by channel sum) and, per
    channel, their ``percentile``: glass when the image has glass, otherwise the
    lightest tissue (then the correction is small and identical in spirit for
    every scan).  A channel whose level is below ``min_level`` is considered to
    have no glass at all and stays at 255.  Never above 255.
    """
    px = np.asarray(rgb)[..., :3].reshape(-1, 3).astype(np.float32)
    if len(px) == 0:
        return np.full(3, 255.0)
    s = px.sum(1)
    k = max(int(len(px) * bright_fraction), 1)
    bright = px[np.argpartition(s, len(s) - k)[len(s) - k:]]
    level = np.percentile(bright, percentile, axis=0).astype(np.float64)
    level = np.where(level < min_level, 255.0, level)
    return np.clip(level, 1.0, 255.0)


def _subsample(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) <= n:
        return x
    idx = np.random.default_rng(0).choice(len(x), n, replace=False)
    return x[idx]


def _macenko(od: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Two unit OD vectors at the robust extreme angles of the 2-D principal plane."""
    cov = np.cov(od, rowvar=False)
    _, vecs = np.linalg.eigh(cov)       # ascending eigenvalues
    plane = vecs[:, [2, 1]]             # two largest
    plane = plane * np.where(plane.sum(0) < 0, -1.0, 1.0)  # point into positive OD
    proj = od @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, [alpha, 100.0 - alpha])
    out = []
    for a in (lo, hi):
        v = plane @ np.array([np.cos(a), np.sin(a)])
        v = -v if v.sum() < 0 else v
        out.append(_unit(np.clip(v, 1e-6, None)))  # a stain cannot emit light
    return out[0], out[1]


def estimate_stains(rgb: np.ndarray, *, defaults: StainVectors = DEFAULT_VECTORS,
                    background="auto", od_threshold: float = OD_THRESHOLD, alpha: float = ALPHA,
                    max_angle_deg: float = MAX_ANGLE_DEG, reject_angle_deg: float = REJECT_ANGLE_DEG,
                    min_separation_deg: float = MIN_SEPARATION_DEG, min_pixels: int = MIN_PIXELS,
                    min_dab_fraction: float = MIN_DAB_FRACTION, dab_conc: float = DAB_CONC,
                    max_samples: int = MAX_SAMPLES) -> StainEstimate:
    """Estimate an H-DAB image's own stain vectors (Macenko) with fallbacks to ``defaults``.

    ``background``: "auto" (:func:`estimate_background`), a number, or a per-channel (3,) array.
    """
    rgb = np.asarray(rgb)[..., :3]
    if isinstance(background, str):
        if background != "auto":
            raise ValueError(f"background must be 'auto', a number or 3 numbers, got {background!r}")
        bg = estimate_background(rgb)
    else:
        bg = np.broadcast_to(np.asarray(background, np.float64), (3,)).copy()
    od = stains.rgb_to_od(rgb.reshape(-1, 3), bg.astype(np.float32)).astype(np.float64)
    od = np.clip(od, 0.0, None)  # pixels brighter than the white level: OD 0
    tissue = od[np.linalg.norm(od, axis=1) > od_threshold]
    d_h, d_dab = _unit(defaults.haematoxylin), _unit(defaults.dab)
    fallbacks: list[str] = []

    def result(h, d, fb):
        if h is d_h and d is d_dab:
            vec = defaults  # exactly, not re-normalised
        else:
            vec = StainVectors(haematoxylin=tuple(h), dab=tuple(d))
        if len(tissue):
            c = _subsample(tissue, max_samples) @ vec.inverse
            hp = float(np.percentile(c[:, 0], H_PERCENTILE))
        else:
            hp = float("nan")
        return StainEstimate(vec, bg, hp, int(len(tissue)), angle_deg(h, d_h), angle_deg(d, d_dab), fb)

    if len(tissue) < max(min_pixels, 3):
        return result(d_h, d_dab, [f"too few stained pixels ({len(tissue)} < {min_pixels}): default vectors"])

    sample = _subsample(tissue, max_samples)
    v1, v2 = _macenko(sample, alpha)
    # Haematoxylin is the "more blue" stain: it absorbs red more than blue
    # (R-J H: red OD 0.65 > blue 0.29; DAB: red 0.27 < blue 0.78).
    h, d = (v1, v2) if (v1[0] - v1[2]) >= (v2[0] - v2[2]) else (v2, v1)

    def sanitise(est, default, name):
        a = angle_deg(est, default)
        if a > reject_angle_deg:
            fallbacks.append(f"{name} estimate {a:.1f} deg from default (> {reject_angle_deg}): default")
            return default
        if a > max_angle_deg:
            fallbacks.append(f"{name} estimate {a:.1f} deg from default: clamped to {max_angle_deg}")
            return _slerp_towards(default, est, max_angle_deg)
        return est

    if angle_deg(h, d) < min_separation_deg:
        fallbacks.append(f"estimates only {angle_deg(h, d):.1f} deg apart: one stain only, default DAB")
        d = d_dab
    h = sanitise(h, d_h, "haematoxylin")
    d = sanitise(d, d_dab, "DAB")
    if not any(s.startswith("DAB") or "default DAB" in s for s in fallbacks):
        # Enough DAB to define a direction?  Measured with the candidate vectors.
        c = sample @ StainVectors(haematoxylin=tuple(h), dab=tuple(d)).inverse
        frac = float((c[:, 1] > dab_conc).mean())
        if frac < min_dab_fraction:
            fallbacks.append(f"only {100 * frac:.2f}% DAB-stained pixels (< {100 * min_dab_fraction:g}%): "
                             "default DAB")
            d = d_dab
    if angle_deg(h, d) < min_separation_deg:  # clamped H next to default DAB (pathological)
        fallbacks.append("H and DAB too close after sanitising: default vectors")
        h, d = d_h, d_dab
    return result(h, d, fallbacks)


def estimate_stain_vectors(rgb: np.ndarray, **kwargs) -> StainVectors:
    """Just the vectors of :func:`estimate_stains` (an analysis.stains.StainVectors)."""
    return estimate_stains(rgb, **kwargs).vectors


def normalise_to_reference(rgb: np.ndarray, vectors_src: StainVectors,
                           vectors_ref: StainVectors = DEFAULT_VECTORS, *, background_src=255.0,
                           background_ref: float = 255.0, scale: float = 1.0,
                           keep_residual: bool = False) -> np.ndarray:
    """Stain normalisation: deconvolve with the source stains, recompose with the reference ones.

    ``scale`` multiplies all concentrations (see :func:`normalise`); the residual
    channel (what neither stain explains: noise, casts) is dropped unless
    ``keep_residual``.  Returns uint8 RGB.
    """
    rgb = np.asarray(rgb)[..., :3]
    bg = np.asarray(background_src, np.float32)
    od = np.clip(stains.rgb_to_od(rgb, bg), 0.0, None)
    c = od @ vectors_src.inverse.astype(np.float32)
    c = c * np.float32(scale)
    return stains.compose(c[..., 0], c[..., 1], vectors_ref, background=background_ref,
                          residual_conc=c[..., 2] if keep_residual else None)


def normalise(rgb: np.ndarray, vectors_ref: StainVectors = DEFAULT_VECTORS, *,
              h_reference: float | None = None, estimate: StainEstimate | None = None,
              **estimate_kwargs) -> tuple[np.ndarray, StainEstimate]:
    """Estimate this image's stains (unless ``estimate`` is given) and normalise it to ``vectors_ref``.

    ``h_reference``: when given, all concentrations are scaled by
    ``h_reference / estimate.h_percentile`` (one factor, clipped to [0.67, 1.5]),
    which corrects an exposure/gamma difference between scanners.  It also
    removes genuine differences in haematoxylin staining, so only use it with a
    reference measured on comparable tissue (e.g. per slide, not per tile).
    """
    est = estimate or estimate_stains(rgb, defaults=vectors_ref, **estimate_kwargs)
    scale = 1.0
    if h_reference is not None and np.isfinite(est.h_percentile) and est.h_percentile > 0:
        scale = float(np.clip(h_reference / est.h_percentile, 0.67, 1.5))
    out = normalise_to_reference(rgb, est.vectors, vectors_ref, background_src=est.background,
                                 scale=scale)
    return out, est
