"""Classic (non-learned) positive cell detection for H-DAB IHC.

Follows the recipe of QuPath's "Positive cell detection": colour
deconvolution -> nucleus channel -> background subtraction -> smoothing ->
threshold -> watershed split of touching nuclei -> size filter -> cell
expansion -> DAB measurement in the chosen compartment -> threshold.
All parameters are physical (micrometres) and converted with ``mpp``, so one
parameter set works at any magnification.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.ndimage import grey_opening
from skimage.feature import peak_local_max
from skimage.morphology import disk
from skimage.segmentation import expand_labels, watershed

from .labels import NEGATIVE, POSITIVE
from .stains import DEFAULT_VECTORS, StainVectors, deconvolve

# Distance-to-background (um) worth as much as the brightest nucleus signal in
# the watershed relief; tuned on synthetic fields and DeepLIIF Bladder1/Lung1.
_DIST_SCALE_UM = 2.0
# Fixed, not the image's own maximum: a per-image scale made splitting depend on what else a
# tile holds, so tiled and whole-image detection disagreed.
_BLOB_SCALE_OD = 0.9
# DAB thresholds when ClassicParams.dab_threshold is None: the mean over a 4 um
# ring dilutes a thin membrane, so "membrane" needs a lower cut than a stained
# nucleus does.  Tuned on synthetic fields / DeepLIIF Ki67; calibrate per assay.
DEFAULT_DAB_THRESHOLD = {"membrane": 0.10, "nucleus": 0.15}
# dab_threshold = ADAPTIVE: the cut between negative and positive cells comes from the image's
# own cells (adaptive_dab_threshold).  Why: the DAB that a negative nucleus shows varies with
# stain and scanner (median 0.03 OD on DeepLIIF, 0.15 on SHIDC-B-Ki-67 and BCData), so one
# constant called half the negatives of two labs positive (bench/RESULTS-accuracy.md).
ADAPTIVE = "adaptive"
# The cut when ClassicParams.dab_threshold is None, per compartment.  Nucleus (Ki-67-like):
# adaptive, better on all three unseen labs measured.  Membrane (PD-L1): the constant, because
# PD-L1 counts membrane staining of any intensity and an Otsu cut between weak and strong
# positives would call the weak ones negative; no labelled real PD-L1 data has measured either.
DEFAULT_CUT = {"membrane": DEFAULT_DAB_THRESHOLD["membrane"], "nucleus": ADAPTIVE}
# How the adaptive cut is read, per compartment: (rule, lowest cut, highest cut) in OD.
# Nucleus: "negative population" = the cells' median DAB plus 2.5 robust spreads of the lower half
# ((median - 25th percentile) / 0.674, a standard deviation for a normal population), clipped to
# [0.20, 0.50].  Chosen by leave-one-source-out on real Ki-67 fields (bench/classic_loso.py:
# the lowest mean over the three folds of the tuning objective; Otsu, Otsu-with-guards, constant
# cuts, and in a second round Gaussian mixtures on DAB / log DAB with a separation guard, Otsu on
# log DAB and k 2-4 were the alternatives; 2.5 replaced 3, BCData held out 5.9 -> 4.3 points,
# bench/RESULTS-accuracy.md).  It reads where the negatives end, so weakly stained
# positives (SHIDC: median 0.39 OD) are not lost to an Otsu cut placed between weak and strong
# ones.  Known limit: a field with more than half of its cells positive *and* their DAB below
# 0.5 OD puts the median among the positives (not met in the data measured).
# Membrane (opt-in only): Otsu clipped to [0.10, 0.60], as before (nothing measured it).
ADAPTIVE_RULE = {"membrane": ("otsu", 0.10, 0.60), "nucleus": ("negative_population", 0.20, 0.50)}
_NEGATIVE_SPREADS = 2.5
_ADAPTIVE_MIN_CELLS = 30  # fewer cells: no distribution to read, keep the rule's lowest cut
# Nucleus detection image for the nuclear compartment: haematoxylin plus the DAB *above* this
# level (OD).  Below it DAB is cytoplasmic haze (BCData: brown cytoplasm segmented as nuclei,
# pale negative nuclei lost in the raised background); a DAB-stained nucleus (median 0.4-1.1 OD)
# still stands out.  With the lower threshold below: BCData F1 0.671 -> 0.766 (leave-one-source-out
# tuning, bench/RESULTS-accuracy.md).
DEFAULT_DAB_HAZE_OD = 0.35
# Nucleus-channel threshold (OD after background removal) per compartment; membrane unchanged.
DEFAULT_DETECTION_THRESHOLD = {"membrane": 0.12, "nucleus": 0.09}


def negative_population_cut(values: np.ndarray, spreads: float = _NEGATIVE_SPREADS) -> float:
    """Median plus ``spreads`` robust standard deviations of the lower half (OD): where the
    majority (negative) population of a field's nuclei ends."""
    values = np.asarray(values, np.float64)
    median = float(np.median(values))
    return median + spreads * (median - float(np.percentile(values, 25))) / 0.674


def adaptive_cut(values: np.ndarray, rule: str, low: float, high: float) -> float:
    """A positivity cut (OD) read from these cells' DAB by ``rule`` ("otsu" or
    "negative_population"), clipped to [low, high]; fewer than 30 cells: ``low``."""
    if rule not in ("otsu", "negative_population"):
        raise ValueError(f"unknown adaptive rule {rule!r}")
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) < _ADAPTIVE_MIN_CELLS or np.ptp(values) <= 0:
        return float(low)
    if rule == "otsu":
        from skimage.filters import threshold_otsu

        cut = threshold_otsu(values)
    else:
        cut = negative_population_cut(values)
    return float(np.clip(cut, low, high))


def adaptive_dab_threshold(values: np.ndarray, compartment: str) -> float:
    """Positivity cut for these cells' compartment DAB (OD), by the compartment's ADAPTIVE_RULE.

    The engine calls this once per slide at merge with every cell's DAB (workers.pipeline.merge_job),
    detect_classic once per image: one function, so a slide's cut and a field's follow one rule."""
    return adaptive_cut(values, *ADAPTIVE_RULE[compartment])


@dataclass
class ClassicParams:
    """Detector settings; lengths in um, areas in um^2, intensities in OD.

    Defaults were tuned on synthetic fields (0.25 and 0.5 um/px) and checked
    on DeepLIIF Ki67 fields and scikit-image's IHC sample.
    """
    background_radius_um: float = 8.0   # structures wider than this count as background
    sigma_um: float = 0.4               # smoothing before thresholding
    min_area_um2: float = 10.0
    max_area_um2: float = 400.0
    # Nucleus-channel OD after background removal; None: DEFAULT_DETECTION_THRESHOLD[compartment].
    threshold: float | None = None
    seed_sigma_um: float = 1.5          # blur for nucleus seeds (~ half a nucleus radius)
    split_um: float = 2.5               # min distance between nucleus seeds (watershed)
    # Compartment mean DAB OD above which a cell is positive; ADAPTIVE: read from this image's own
    # cells (adaptive_dab_threshold); None: the compartment's default (DEFAULT_CUT).
    dab_threshold: float | str | None = None
    ring_um: float = 4.0                # cell expansion beyond the nucleus (membrane ring)
    compartment: str = "membrane"       # "membrane" (PD-L1) or "nucleus" (Ki67-like)
    # Which image nuclei are found in: "hematoxylin", "od_sum" (H + DAB, finds
    # nuclei that DAB stains dark), or "auto" = od_sum for the nucleus
    # compartment, haematoxylin otherwise (membranes must not become nuclei).
    detection_image: str = "auto"
    # od_sum only: DAB counts towards the detection image only above this OD (cytoplasmic haze
    # below it); None: DEFAULT_DAB_HAZE_OD; 0 is the plain H + DAB sum.
    dab_haze_od: float | None = None
    vectors: StainVectors = field(default_factory=lambda: DEFAULT_VECTORS)

    @property
    def detection_threshold(self) -> float:
        """The nucleus-channel threshold with the compartment's default resolved."""
        return DEFAULT_DETECTION_THRESHOLD[self.compartment] if self.threshold is None else float(self.threshold)

    @property
    def haze_od(self) -> float:
        return DEFAULT_DAB_HAZE_OD if self.dab_haze_od is None else float(self.dab_haze_od)

    @property
    def cut(self) -> float | str:
        """ADAPTIVE or the fixed cut in OD, with the compartment's default resolved."""
        return DEFAULT_CUT[self.compartment] if self.dab_threshold is None else self.dab_threshold

    @property
    def effective_dab_threshold(self) -> float:
        """The fixed cut (for ADAPTIVE, the floor it never goes below)."""
        return ADAPTIVE_RULE[self.compartment][1] if self.cut == ADAPTIVE else float(self.cut)


@dataclass
class ClassicCells:
    """The classic pipeline's nuclei with their measurements; analysis.detectors.Detections is what
    every detector returns (ClassicDetector keeps xy, labels, scores and the compartment DAB)."""

    xy: np.ndarray          # (N, 2) float32, (x, y) px of the input image
    labels: np.ndarray      # (N,) int8, 1 positive, 2 negative
    scores: np.ndarray      # (N,) float32 in [0, 1]
    dab_nucleus: np.ndarray  # (N,) mean DAB OD inside the nucleus
    dab_ring: np.ndarray    # (N,) mean DAB OD in the expanded ring
    area_um2: np.ndarray    # (N,) nucleus area
    dab_threshold: float = float("nan")  # the positivity cut applied (adaptive or fixed)
    label_image: np.ndarray | None = field(default=None, repr=False)  # nuclei, 1..N

    def __len__(self):
        return len(self.labels)


def _background(img, radius_px):
    """Slowly varying background level: grey opening wider than a nucleus.

    Computed on a copy downsampled so the radius is ~8 px (a disk opening at
    full resolution would cost O(r^2) per pixel), then smoothed and upsampled.
    """
    f = max(min(int(radius_px // 8), min(img.shape[:2]) // 2), 1)
    small = img[: img.shape[0] // f * f, : img.shape[1] // f * f]
    small = small.reshape(small.shape[0] // f, f, small.shape[1] // f, f).mean(axis=(1, 3))
    r = max(int(round(radius_px / f)), 1)
    bg = grey_opening(small, footprint=disk(r))
    bg = ndimage.gaussian_filter(bg, r / 2.0)
    if f > 1:
        zoom = (img.shape[0] / bg.shape[0], img.shape[1] / bg.shape[1])
        bg = ndimage.zoom(bg, zoom, order=1, grid_mode=True, mode="nearest")
        bg = bg[: img.shape[0], : img.shape[1]]
    return bg


def _segment_nuclei(rgb, mpp, p: ClassicParams):
    """Label image of nuclei (0 background) and the detection signal."""
    h, dab = deconvolve(rgb, p.vectors)
    mode = p.detection_image
    if mode == "auto":
        mode = "od_sum" if p.compartment == "nucleus" else "hematoxylin"
    det = np.clip(h, 0, None)
    if mode == "od_sum":
        det = det + np.clip(dab - p.haze_od, 0, None)
    elif mode != "hematoxylin":
        raise ValueError(f"unknown detection_image {p.detection_image!r}")

    det = det - _background(det, p.background_radius_um / mpp)
    sm = ndimage.gaussian_filter(det, p.sigma_um / mpp)
    fg = ndimage.binary_fill_holes(sm > p.detection_threshold)
    fg = ndimage.binary_opening(fg, iterations=max(int(round(0.5 / mpp)), 1))

    # Split touching nuclei.  Seeds: maxima of the signal blurred at about
    # half a nucleus radius (a blob detector - robust when nuclei touch with
    # no gap, where distance-transform seeds merge), at least split_um apart.
    # Flooding a mix of intensity and distance-to-background puts the cut
    # lines in the intensity valleys / shape necks between nuclei.
    blob = ndimage.gaussian_filter(det, p.seed_sigma_um / mpp)
    dist = ndimage.distance_transform_edt(fg) * mpp  # um
    relief = blob / _BLOB_SCALE_OD + dist / _DIST_SCALE_UM
    md = max(int(round(p.split_um / mpp)), 1)
    comps, _ = ndimage.label(fg)
    peaks = peak_local_max(relief, min_distance=md, labels=comps, exclude_border=False)
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    lab = watershed(-relief, markers, mask=fg)
    return size_filtered(lab, mpp, p), h, dab, det


def size_filtered(lab: np.ndarray, mpp: float, p: ClassicParams) -> np.ndarray:
    """The label image with nuclei outside [min_area_um2, max_area_um2] removed, renumbered 1..N."""
    n = int(lab.max())
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:] * mpp * mpp
    ok = (area >= p.min_area_um2) & (area <= p.max_area_um2)
    remap = np.zeros(n + 1, np.int32)
    remap[1:][ok] = np.arange(1, ok.sum() + 1)
    return remap[lab]


def _label_means(values, lab, n):
    """Mean of ``values`` per label 1..n (NaN for empty labels)."""
    s = np.bincount(lab.ravel(), weights=values.ravel(), minlength=n + 1)[1:]
    c = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / c, c


def detect_classic(rgb: np.ndarray, mpp: float, params: ClassicParams | None = None,
                   return_labels: bool = False) -> ClassicCells:
    """Detect and classify cells in an RGB uint8 H-DAB image at ``mpp`` um/px."""
    p = params or ClassicParams()
    if p.compartment not in ("membrane", "nucleus"):
        raise ValueError(f"unknown compartment {p.compartment!r}")
    rgb = np.asarray(rgb)[..., :3]
    lab, h, dab, det = _segment_nuclei(rgb, mpp, p)
    n = int(lab.max())

    ys, xs = np.indices(lab.shape, dtype=np.float64)
    cx, area_px = _label_means(xs, lab, n)  # centroid = mean pixel position
    cy, _ = _label_means(ys, lab, n)
    dab_nuc, _ = _label_means(dab, lab, n)
    det_mean, _ = _label_means(det, lab, n)

    # Ring = cell expansion minus all nuclei.  expand_labels grows each nucleus
    # only until it meets its neighbour (a Voronoi split, like QuPath's cell
    # expansion), so a ring never counts another cell's nucleus or membrane
    # beyond the midline.
    ring_lab = expand_labels(lab, distance=p.ring_um / mpp)
    ring_lab[lab > 0] = 0
    dab_ring, ring_px = _label_means(dab, ring_lab, n)
    dab_ring = np.where(ring_px > 0, dab_ring, 0.0)

    value = dab_ring if p.compartment == "membrane" else dab_nuc
    if p.cut == ADAPTIVE:
        t = adaptive_dab_threshold(value, p.compartment)
    else:
        t = max(p.effective_dab_threshold, 1e-6)
    labels = np.where(value > t, POSITIVE, NEGATIVE).astype(np.int8)
    # Confidence = (how clearly it is a nucleus) x (how clearly it is on its
    # side of the DAB threshold), both squashed to [0, 1].
    cls_conf = 0.5 + 0.5 * np.tanh(np.abs(value - t) / (0.5 * t))
    det_conf = np.clip(det_mean / (2.0 * p.detection_threshold), 0.0, 1.0)
    scores = (cls_conf * det_conf).astype(np.float32)

    return ClassicCells(
        xy=np.stack([cx, cy], 1).astype(np.float32).reshape(-1, 2),
        labels=labels, scores=scores,
        dab_nucleus=dab_nuc.astype(np.float32), dab_ring=dab_ring.astype(np.float32),
        area_um2=(area_px * mpp * mpp).astype(np.float32),
        dab_threshold=float(t),
        label_image=lab if return_labels else None,
    )
