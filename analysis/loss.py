"""LCFCN-style point-supervised loss, multi-class and batched.

Laradji et al., "Where are the blobs: counting by localization with point
supervision", ECCV 2018.  Annotators click one point per nucleus; the loss
turns those clicks into four pressures on the softmax output:

* image level   - each class with a point must fire somewhere, absent classes nowhere;
* point level   - cross-entropy at every clicked pixel;
* split level   - watershed lines between points are background, so touching
                  nuclei become separate blobs (global: seeded by all points over
                  an image-gradient landscape; per blob: a predicted blob holding
                  two or more points is cut between them);
* false positive- predicted blobs of class c without a point of class c are background.

Reductions follow the LCFCN reference code (sums over pixels, the global split
averaged over its boundary and scaled by the number of points, per-blob splits
scaled by points + 1) divided by the batch size.  Blob and watershed work runs
in numpy on detached predictions; only the CE/BCE terms carry gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)  # blobs are 8-connected, as skimage.measure.label in LCFCN


@dataclass
class LossWeights:
    image: float = 1.0
    point: float = 1.0
    global_split: float = 1.0
    blob_split: float = 1.0
    false_positive: float = 1.0
    # How much the predicted background probability adds to the image-gradient
    # landscape of the global watershed (0 = image gradients only).
    landscape_prob: float = 1.0


@dataclass
class SplitTargets:
    """Per-pixel weights (B, H, W) of the pixels pushed to background; zero elsewhere."""

    global_split: np.ndarray
    blob_split: np.ndarray
    false_positive: np.ndarray
    n_split_blobs: int  # predicted blobs holding >= 2 points
    n_fp_blobs: int  # predicted blobs holding no point of their class


@dataclass
class LossTerms:
    image: torch.Tensor
    point: torch.Tensor
    global_split: torch.Tensor
    blob_split: torch.Tensor
    false_positive: torch.Tensor
    total: torch.Tensor
    targets: SplitTargets


def point_supervised_loss(
    logits: torch.Tensor,
    points: torch.Tensor,
    images: torch.Tensor,
    weights: LossWeights | None = None,
    ignore: torch.Tensor | None = None,
    point_radius_px: float = 0.0,
) -> LossTerms:
    """LCFCN loss for logits (B,C,H,W), point map (B,H,W) (0 none, c>=1 a point of class c),
    the network input images (B,3,H,W) and an optional ignore mask (B,H,W, True = unannotated).

    point_radius_px > 0 spreads the point term over a small disc around each click
    (see point_disc_targets); 0 is LCFCN's single clicked pixel."""
    import torch
    from torch.nn import functional as F

    weights = weights or LossWeights()
    batch, num_classes = logits.shape[:2]
    device = logits.device
    log_probs = F.log_softmax(logits.float(), dim=1)  # fp32 even under autocast: bf16 logs are too coarse
    points = points.to(device=device, dtype=torch.long)
    valid = torch.ones_like(points, dtype=torch.bool) if ignore is None else ~ignore.to(device=device, dtype=torch.bool)
    points = points * valid  # clicks in ignored areas do not count

    # Image level: BCE on the max probability of each class; background is always present.
    # Computed in log space at each class's arg-max pixel: log(1 - p_c) is the
    # logsumexp of the other classes there, which stays finite and NaN-free even
    # when p_c saturates (and, unlike F.binary_cross_entropy, is autocast-safe).
    flat = log_probs.flatten(2)  # (B, C, N)
    where_max = flat.masked_fill(~valid.flatten(1)[:, None], float("-inf")).argmax(2)  # (B, C)
    at_max = flat.gather(2, where_max[:, None, :].expand(batch, num_classes, num_classes))  # [b, k, c]
    log_max = at_max.diagonal(dim1=1, dim2=2)  # log p_c at the arg-max pixel of c
    same = torch.eye(num_classes, dtype=torch.bool, device=device)[None]
    log_not_max = at_max.masked_fill(same, float("-inf")).logsumexp(1)  # log(1 - p_c) there
    present = torch.zeros(batch, num_classes, device=device)
    present[:, 0] = 1.0
    classes = torch.arange(1, num_classes, device=device)[None, :, None, None]
    present[:, 1:] = (points[:, None] == classes).flatten(2).any(2).float()
    has_pixels = valid.flatten(1).any(1).float()[:, None]  # a fully ignored tile says nothing
    image_bce = -(present * log_max + (1.0 - present) * log_not_max)
    image_term = (image_bce * has_pixels).sum() / batch

    # Point level: cross-entropy at the clicked pixels (or over a small disc around each).
    if point_radius_px > 0:
        disc_class, disc_weight = point_disc_targets(points.cpu().numpy(), point_radius_px)
        disc_class = torch.from_numpy(disc_class).to(device)
        disc_nll = -log_probs.gather(1, disc_class[:, None]).squeeze(1)
        point_term = (torch.from_numpy(disc_weight).to(device) * disc_nll).sum() / batch
    else:
        point_nll = -log_probs.gather(1, points[:, None]).squeeze(1)
        point_term = point_nll[points > 0].sum() / batch

    # Split and false-positive targets come from the detached prediction.
    with torch.no_grad():
        predicted = log_probs.argmax(1) * valid
        foreground = 1.0 - log_probs[:, 0].exp()
    targets = split_targets(
        predicted.cpu().numpy(),
        foreground.cpu().numpy(),
        points.cpu().numpy(),
        images.detach().float().cpu().numpy(),
        valid.cpu().numpy(),
        landscape_prob=weights.landscape_prob,
    )
    background_nll = -log_probs[:, 0]

    def pushed_to_background(weight_map: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(weight_map).to(device) * background_nll).sum() / batch

    global_term = pushed_to_background(targets.global_split)
    blob_term = pushed_to_background(targets.blob_split)
    fp_term = pushed_to_background(targets.false_positive)
    total = (
        weights.image * image_term
        + weights.point * point_term
        + weights.global_split * global_term
        + weights.blob_split * blob_term
        + weights.false_positive * fp_term
    )
    return LossTerms(image_term, point_term, global_term, blob_term, fp_term, total, targets)


def point_disc_targets(points: np.ndarray, radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Class (B,H,W) int64 and weight (B,H,W) float32 maps for the disc point term.

    Why: a single supervised pixel per nucleus gives the network (whose logits
    are bilinearly upsampled from stride 8) a tiny, noisy target; a disc of a
    few pixels around each click (well inside any nucleus: clicks are at the
    centre and nuclei are >= 6 µm across) gives the same message - "this class
    here" - with many times the gradient signal, and makes the class peak at
    the click.  Each pixel belongs to its nearest click (touching nuclei never
    share a pixel); the weights of one disc sum to 1, so the term has the
    scale of LCFCN's one-pixel term (one CE per point), and radius 0 gives it
    back exactly.
    """
    from scipy import ndimage

    classes = np.zeros(points.shape, np.int64)
    weights = np.zeros(points.shape, np.float32)
    for i, clicks in enumerate(points):
        if not (clicks > 0).any():
            continue
        dist, (rows, cols) = ndimage.distance_transform_edt(clicks == 0, return_indices=True)
        disc = dist <= radius_px
        owner = rows * clicks.shape[1] + cols  # flat index of the nearest click
        classes[i][disc] = clicks[rows[disc], cols[disc]]
        size = np.bincount(owner[disc], minlength=clicks.size)
        weights[i][disc] = 1.0 / size[owner[disc]]
    return classes, weights


def split_targets(
    predicted: np.ndarray,
    foreground: np.ndarray,
    points: np.ndarray,
    images: np.ndarray,
    valid: np.ndarray,
    landscape_prob: float = 1.0,
) -> SplitTargets:
    """Numpy side of the loss: which pixels are pushed to background, and how hard.

    predicted (B,H,W) argmax classes, foreground (B,H,W) 1 - p(background),
    points (B,H,W) class ids of clicks, images (B,3,H,W), valid (B,H,W) bool.
    """
    global_w = np.zeros(predicted.shape, np.float32)
    blob_w = np.zeros(predicted.shape, np.float32)
    fp_w = np.zeros(predicted.shape, np.float32)
    n_split = n_fp = 0
    for i in range(predicted.shape[0]):
        landscape = split_landscape(images[i], foreground[i], landscape_prob)
        global_w[i] = _global_split_weights(landscape, points[i]) * valid[i]
        for cls in range(1, int(predicted[i].max(initial=0)) + 1):
            split, fp, n_split_c, n_fp_c = _blob_weights(predicted[i] == cls, cls, points[i], landscape)
            blob_w[i] += split * valid[i]
            fp_w[i] += fp * valid[i]
            n_split += n_split_c
            n_fp += n_fp_c
    return SplitTargets(global_w, blob_w, fp_w, n_split, n_fp)


def split_landscape(image: np.ndarray, foreground: np.ndarray, prob_weight: float = 1.0) -> np.ndarray:
    """Watershed relief (H,W): high on intensity edges and where the model sees background.

    Sobel of the grey image gives ridges at nuclear borders; adding 1 - p(fg)
    raises the gaps between nuclei, so flooding from the clicks meets there.
    Normalised so the result does not depend on how images were standardised.
    """
    from skimage.filters import sobel

    edges = sobel(image.mean(axis=0).astype(np.float64))
    peak = edges.max()
    if peak > 0:
        edges = edges / peak
    return edges + prob_weight * (1.0 - foreground.astype(np.float64))


def _global_split_weights(landscape: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Watershed seeded by every click: its lines are background, weighted n_points / n_line_pixels."""
    from skimage.segmentation import watershed

    seeds = _numbered_seeds(points > 0)
    n_points = int(seeds.max(initial=0))
    if n_points < 2:
        return np.zeros(points.shape, np.float32)
    lines = _region_boundaries(watershed(landscape, seeds)) & (points == 0)
    n_line = int(lines.sum())
    return lines * np.float32(n_points / max(n_line, 1))


def _blob_weights(mask: np.ndarray, cls: int, points: np.ndarray, landscape: np.ndarray):
    """For the predicted blobs of one class: split lines (weight points + 1) and false positives (weight 1)."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    split = np.zeros(mask.shape, np.float32)
    fp = np.zeros(mask.shape, np.float32)
    blobs, n_blobs = ndimage.label(mask, structure=EIGHT_CONNECTED)
    if n_blobs == 0:
        return split, fp, 0, 0
    # Any click splits (two touching nuclei of different classes are still two),
    # but only a click of this class justifies the blob's existence.
    n_any = np.bincount(blobs[points > 0], minlength=n_blobs + 1)
    n_same = np.bincount(blobs[points == cls], minlength=n_blobs + 1)
    fp_ids = np.flatnonzero(n_same[1:] == 0) + 1  # index 0 is "no blob"
    fp[np.isin(blobs, fp_ids)] = 1.0
    n_split = 0
    for blob_id, box in enumerate(ndimage.find_objects(blobs), start=1):
        if n_any[blob_id] < 2:
            continue
        n_split += 1
        inside = blobs[box] == blob_id
        seeds = _numbered_seeds((points[box] > 0) & inside)
        regions = watershed(landscape[box], seeds, mask=inside)
        lines = _region_boundaries(regions) & (points[box] == 0)
        split[box][lines] = n_any[blob_id] + 1
    return split, fp, n_split, len(fp_ids)


def _numbered_seeds(mask: np.ndarray) -> np.ndarray:
    seeds = np.zeros(mask.shape, np.int32)
    seeds[mask] = np.arange(1, int(mask.sum()) + 1)
    return seeds


def _region_boundaries(regions: np.ndarray) -> np.ndarray:
    """Pixels of a labelled region that touch (4-neighbourhood) a different labelled region.

    Unlike skimage's find_boundaries this ignores label 0, so a blob's outer
    rim is not mistaken for a split line.
    """
    boundary = np.zeros(regions.shape, bool)
    for axis in (0, 1):
        a = np.swapaxes(regions, 0, axis)
        b = np.swapaxes(boundary, 0, axis)  # a view: writes land in `boundary`
        differs = (a[1:] != a[:-1]) & (a[1:] > 0) & (a[:-1] > 0)
        b[1:] |= differs
        b[:-1] |= differs
    return boundary
