"""What one optimisation step sees: a batch of augmented crops with point maps, and the
far-background loss term computed over those point maps."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import augment
from .training_config import TrainConfig

NOT_TUMOUR = -1  # label of a labelled non-tumour nucleus (lymphocyte) inside make_batch
UNCERTAIN = -2  # label of a tumour nucleus of disputed class (Sample.uncertain_xy) inside make_batch


class Batch(NamedTuple):
    images: object  # torch (B,3,H,W) float, normalised
    points: object  # torch (B,H,W) int64: 0 none, c >= 1 a click of class c
    # (B,H,W) bool: the pixel of each labelled non-tumour nucleus inside the crop (far_background_term
    # grows its background disc of not_tumour_radius_px around it)
    not_tumour: np.ndarray
    # (B,H,W) bool: discs over the uncertain nuclei, and over the clicked nuclei whose click is outside
    # the crop (no target of any kind)
    ignore: np.ndarray
    # (B,H,W) bool: the part inside the crop of the background disc of each labelled non-tumour nucleus
    # whose centre is outside it, drawn exactly (a disc grown from a crop pixel would reach past it)
    not_tumour_disc: np.ndarray


def uncertain_radius_px(config: TrainConfig) -> float:
    """Radius of the ignore disc over an uncertain nucleus, in training pixels.

    background_radius_um is what a click already reserves for its nucleus (no far-background push
    within it), so a nucleus that lost its click gets the same disc; it is widened by the largest
    scale jitter, since a crop may show the nucleus up to (1 + scale_jitter) times its size.
    point_radius_um (1.5 µm) would not do: it is chosen to sit well inside a nucleus, not to cover it.
    """
    return config.background_radius_um * (1.0 + config.scale_jitter) / config.mpp


def not_tumour_radius_px(config: TrainConfig) -> float:
    """Radius of the background disc far_background_term grows around each labelled non-tumour
    nucleus, in training pixels (train() passes point_radius_um there)."""
    return config.point_radius_um / config.mpp


def draw_batch(samples_by_source: list[list], config: TrainConfig, rng: np.random.Generator) -> Batch:
    """Images (B,3,H,W) normalised, point maps (B,H,W) of class ids, non-tumour pixels and ignore discs.

    Each item first picks a source (uniformly, or by config.source_weights),
    then a field: a small real source is not drowned by thousands of synthetic fields.
    Uncertain nuclei travel with the clicks and draw nothing from rng, so a field without
    them gives exactly the batch it gave before they were carried.

    Near the crop border a disc is drawn for every point whose disc overlaps the crop, centre
    inside or not: an uncertain nucleus's ignore disc; a lymphocyte's background disc (Batch.not_tumour_disc
    for one centred outside); and a click outside the crop becomes an ignore disc (its nucleus may reach in),
    never a point inside.
    A point farther out is dropped as before and augment's reach draws nothing from rng, so without
    a point near the border the batch is bit-identical to the one drawn before.
    """
    import torch

    det = config.detector_config()
    images = np.empty((config.batch_size, config.crop, config.crop, 3), np.uint8)
    points = np.zeros((config.batch_size, config.crop, config.crop), np.int64)
    background = np.zeros((config.batch_size, config.crop, config.crop), bool)
    ignore = np.zeros((config.batch_size, config.crop, config.crop), bool)
    background_disc = np.zeros((config.batch_size, config.crop, config.crop), bool)
    radius = uncertain_radius_px(config)
    lymph_radius = not_tumour_radius_px(config)
    grid_y, grid_x = np.ogrid[: config.crop, : config.crop]
    for i in range(config.batch_size):
        if config.source_weights is None:
            pool = samples_by_source[int(rng.integers(len(samples_by_source)))]
        else:
            share = np.asarray(config.source_weights, float)
            pool = samples_by_source[int(rng.choice(len(samples_by_source), p=share / share.sum()))]
        s = pool[int(rng.integers(len(pool)))]
        # Labelled non-tumour and uncertain nuclei travel through the same crop, scale, flips as the clicks.
        uncertain_xy = np.reshape(getattr(s, "uncertain_xy", np.zeros((0, 2))), (-1, 2))
        extra = [(np.reshape(s.ignore_xy, (-1, 2)), NOT_TUMOUR), (uncertain_xy, UNCERTAIN)]
        extra = [(xy, label) for xy, label in extra if len(xy)]
        xy = np.concatenate([s.xy, *(e for e, _ in extra)]) if extra else s.xy
        labels = np.concatenate([s.labels, *(np.full(len(e), label) for e, label in extra)]) if extra else s.labels
        a = augment.augment(s.rgb, xy, labels, rng, config.crop, config.stain_sigma, config.stain_bias,
                            config.scale_jitter, reach=max(radius, lymph_radius))
        images[i] = a.rgb
        # Clip: a click exactly on the outer edge of a border pixel (x = -0.5) lands on W after a flip.
        # A point outside the crop (a.inside False) lands on the crop pixel nearest its centre.
        cols, rows = np.clip(np.floor(a.xy + 0.5).astype(np.int64), 0, config.crop - 1).T
        tumour = (a.labels != NOT_TUMOUR) & (a.labels != UNCERTAIN)
        click = tumour & a.inside
        # A lymphocyte outside whose disc reaches in: the part of its disc inside the crop, drawn exactly
        # (a disc grown from the nearest crop pixel would reach up to twice the radius from its centre).
        lymph = (a.labels == NOT_TUMOUR) & a.inside
        points[i, rows[click], cols[click]] = a.labels[click]
        background[i, rows[lymph], cols[lymph]] = True
        for x, y in a.xy[(a.labels == NOT_TUMOUR) & ~a.inside]:
            background_disc[i] |= (grid_x - x) ** 2 + (grid_y - y) ** 2 <= lymph_radius**2
        # A click outside the crop keeps its nucleus out of every target like an uncertain one: the part
        # inside the crop is neither background nor a click.  A disc centred outside covers the crop
        # pixels within its radius (none, if it does not reach in).
        for x, y in a.xy[(a.labels == UNCERTAIN) | (tumour & ~a.inside)]:
            ignore[i] |= (grid_x - x) ** 2 + (grid_y - y) ** 2 <= radius**2
        # A click inside a disc (a touching neighbour) still counts: the loss drops clicks it is told to ignore.
        ignore[i, rows[click], cols[click]] = False
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(det.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(det.std, dtype=torch.float32).view(1, 3, 1, 1)
    return Batch((x - mean) / std, torch.from_numpy(points), background, ignore, background_disc)


def make_batch(samples_by_source: list[list], config: TrainConfig, rng: np.random.Generator):
    """(images, points, not_tumour) of draw_batch, without the ignore discs of the uncertain nuclei.

    Training uses draw_batch: the loss must be told to ignore those discs."""
    return tuple(draw_batch(samples_by_source, config, rng)[:3])


def far_background_term(logits, points, radius_px: float, not_tumour=None, not_tumour_radius_px: float = 0.0,
                        ignore=None, not_tumour_disc=None):
    """Background NLL on pixels farther than radius_px from every click.

    Scaled like LCFCN's global split term (mean over the pixels, times the
    number of clicks), so it weighs as much as the point term whatever the crop size.
    ``not_tumour`` (B,H,W bool): labelled non-tumour nuclei (lymphocytes); a disc of
    ``not_tumour_radius_px`` around each is background too, even near a click.
    ``not_tumour_disc`` (B,H,W bool): background pixels given as they are (the discs of non-tumour
    nuclei centred outside the crop, Batch.not_tumour_disc), even near a click.
    ``ignore`` (B,H,W bool, numpy or torch): pixels never pushed to background (the discs
    over uncertain nuclei, Batch.ignore), not even inside a non-tumour disc.
    """
    import torch
    from scipy import ndimage
    from torch.nn import functional as F

    clicks = points.detach().cpu().numpy() > 0
    if ignore is not None:
        ignore = ignore.detach().cpu().numpy() if isinstance(ignore, torch.Tensor) else np.asarray(ignore)
    weights = np.zeros(clicks.shape, np.float32)
    for i, mine in enumerate(clicks):
        far = ndimage.distance_transform_edt(~mine) > radius_px if mine.any() else np.ones(mine.shape, bool)
        if not_tumour is not None and not_tumour[i].any():
            far |= ndimage.distance_transform_edt(~not_tumour[i]) <= not_tumour_radius_px
        if not_tumour_disc is not None and not_tumour_disc[i].any():
            far |= not_tumour_disc[i]
        if ignore is not None and ignore[i].any():
            far &= ~ignore[i]
        weights[i][far] = max(int(mine.sum()), 1) / max(int(far.sum()), 1)
    nll = -F.log_softmax(logits.float(), dim=1)[:, 0]
    return (torch.from_numpy(weights).to(nll.device) * nll).sum() / len(clicks)
