"""What one optimisation step sees: a batch of augmented crops with point maps, and the
far-background loss term computed over those point maps."""

from __future__ import annotations

import numpy as np

from . import augment
from .training_config import TrainConfig

NOT_TUMOUR = -1  # label of a labelled non-tumour nucleus (lymphocyte) inside make_batch


def make_batch(samples_by_source: list[list], config: TrainConfig, rng: np.random.Generator):
    """Images (B,3,H,W) normalised, point maps (B,H,W) of class ids.

    Each item first picks a source (uniformly, or by config.source_weights),
    then a field: a small real source is not drowned by thousands of synthetic fields.
    """
    import torch

    det = config.detector_config()
    images = np.empty((config.batch_size, config.crop, config.crop, 3), np.uint8)
    points = np.zeros((config.batch_size, config.crop, config.crop), np.int64)
    background = np.zeros((config.batch_size, config.crop, config.crop), bool)
    for i in range(config.batch_size):
        if config.source_weights is None:
            pool = samples_by_source[int(rng.integers(len(samples_by_source)))]
        else:
            share = np.asarray(config.source_weights, float)
            pool = samples_by_source[int(rng.choice(len(samples_by_source), p=share / share.sum()))]
        s = pool[int(rng.integers(len(pool)))]
        # Labelled non-tumour nuclei travel through the same crop and flips as the clicks.
        xy = np.concatenate([s.xy, s.ignore_xy]) if len(s.ignore_xy) else s.xy
        labels = np.concatenate([s.labels, np.full(len(s.ignore_xy), NOT_TUMOUR)]) if len(s.ignore_xy) else s.labels
        a = augment.augment(s.rgb, xy, labels, rng, config.crop, config.stain_sigma, config.stain_bias,
                            config.scale_jitter)
        images[i] = a.rgb
        # Clip: a click exactly on the outer edge of a border pixel (x = -0.5) lands on W after a flip.
        cols, rows = np.clip(np.floor(a.xy + 0.5).astype(np.int64), 0, config.crop - 1).T
        tumour = a.labels != NOT_TUMOUR
        points[i, rows[tumour], cols[tumour]] = a.labels[tumour]
        background[i, rows[~tumour], cols[~tumour]] = True
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(det.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(det.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std, torch.from_numpy(points), background


def far_background_term(logits, points, radius_px: float, not_tumour=None, not_tumour_radius_px: float = 0.0):
    """Background NLL on pixels farther than radius_px from every click.

    Scaled like LCFCN's global split term (mean over the pixels, times the
    number of clicks), so it weighs as much as the point term whatever the crop size.
    ``not_tumour`` (B,H,W bool): labelled non-tumour nuclei (lymphocytes); a disc of
    ``not_tumour_radius_px`` around each is background too, even near a click.
    """
    import torch
    from scipy import ndimage
    from torch.nn import functional as F

    clicks = points.detach().cpu().numpy() > 0
    weights = np.zeros(clicks.shape, np.float32)
    for i, mine in enumerate(clicks):
        far = ndimage.distance_transform_edt(~mine) > radius_px if mine.any() else np.ones(mine.shape, bool)
        if not_tumour is not None and not_tumour[i].any():
            far |= ndimage.distance_transform_edt(~not_tumour[i]) <= not_tumour_radius_px
        weights[i][far] = max(int(mine.sum()), 1) / max(int(far.sum()), 1)
    nll = -F.log_softmax(logits.float(), dim=1)[:, 0]
    return (torch.from_numpy(weights).to(nll.device) * nll).sum() / len(clicks)
