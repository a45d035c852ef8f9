"""From detector probability maps to one point per nucleus.

Peaks of the foreground probability (1 - p(background)) are found with
max-pooling; flat-topped peaks (plateaus, common once logits saturate or are
rounded to bf16) are collapsed to their centroid; then a greedy non-maximum
suppression with a radius in µm keeps one point per nucleus regardless of
class.  Everything is torch ops, so it runs where the probabilities live (GPU
or CPU), and every step is order-independent or integer-exact so results are
deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

    from analysis.nets import DetectorConfig

NMS_BLOCK = 1024  # candidates compared at once: pairwise float64 offsets take NMS_BLOCK**2 * 16 bytes


@dataclass
class PointSet:
    """Detections of one image; x = column, y = row, in pixels of the input (pixel centres at integers)."""

    xy: np.ndarray  # float32 (N, 2)
    labels: np.ndarray  # int8 (N,): 1 positive, 2 negative
    scores: np.ndarray  # float32 (N,): probability of the label at the peak

    def __len__(self) -> int:
        return len(self.labels)


def extract_points(probs, mpp: float, nms_radius_um: float = 3.0, min_score: float = 0.5) -> list[PointSet]:
    """One PointSet per image of probs (B, C, H, W): softmax output, tensor (any device) or numpy."""
    import torch
    from torch.nn import functional as F

    probs = torch.as_tensor(probs).detach()
    if probs.ndim != 4 or probs.shape[1] < 2:
        raise ValueError(f"expected probabilities (B, C>=2, H, W), got {tuple(probs.shape)}")
    probs = probs.float()
    radius_px = nms_radius_um / mpp
    # Pool over the square inscribed in the NMS disc, so pooling only drops
    # pixels that a higher pixel within the radius outranks; NMS then enforces
    # the full disc.
    half = max(1, int(radius_px / math.sqrt(2)))
    foreground = 1.0 - probs[:, 0]
    pooled = F.max_pool2d(foreground[:, None], 2 * half + 1, stride=1, padding=half)[:, 0]
    is_peak = (foreground == pooled) & (foreground >= min_score)

    image, xy, row, col = _plateau_points(is_peak)
    scores, labels = probs[image, 1:, row, col].max(dim=1)  # class at the peak, among non-background
    labels = labels + 1
    results = []
    for i in range(probs.shape[0]):
        mine = torch.nonzero(image == i).squeeze(1)
        kept = mine[nms_keep(xy[mine], scores[mine], radius_px)]
        results.append(
            PointSet(
                xy=xy[kept].float().cpu().numpy(),
                labels=labels[kept].to(torch.int8).cpu().numpy(),
                scores=scores[kept].cpu().numpy(),
            )
        )
    return results


def _plateau_points(is_peak: torch.Tensor):
    """Collapse each 8-connected group of peak pixels to one point.

    Returns per group: image index, centroid xy (float64, x = column) and the
    row/col of the member nearest the centroid, where class and score are read.
    Sums are over integers and choices use amin, so the result does not depend
    on the order in which the GPU accumulates.
    """
    import torch

    image, row, col = is_peak.nonzero(as_tuple=True)  # row-major order
    device = is_peak.device
    if len(row) == 0:
        return image, torch.zeros(0, 2, dtype=torch.float64, device=device), row, col
    _, group = torch.unique(_component_ids(is_peak)[image, row, col], return_inverse=True)
    n_groups = int(group.max()) + 1

    def group_sum(values):
        return torch.zeros(n_groups, dtype=values.dtype, device=device).index_put_((group,), values, accumulate=True)

    count = group_sum(torch.ones_like(row)).double()
    centre_y = group_sum(row) / count
    centre_x = group_sum(col) / count
    dist2 = (row - centre_y[group]) ** 2 + (col - centre_x[group]) ** 2
    nearest = torch.full((n_groups,), math.inf, dtype=torch.float64, device=device)
    nearest = nearest.scatter_reduce(0, group, dist2, "amin")
    member = torch.arange(len(row), device=device)
    candidate = torch.where(dist2 == nearest[group], member, len(row))  # ties: first in row-major order
    chosen = torch.full((n_groups,), len(row), device=device).scatter_reduce(0, group, candidate, "amin")
    return image[chosen], torch.stack([centre_x, centre_y], dim=1), row[chosen], col[chosen]


def _component_ids(mask: torch.Tensor) -> torch.Tensor:
    """8-connected component labels of a (B, H, W) bool mask, 0 outside.

    Each pixel starts with its own id and repeatedly takes the max of its 3x3
    neighbourhood inside the mask; plateaus are a few pixels wide, so this
    converges in a few max-pools on any device.  float64 keeps ids exact.
    """
    import torch
    from torch.nn import functional as F

    inside = mask[:, None].double()
    ids = torch.arange(1, mask.numel() + 1, dtype=torch.float64, device=mask.device).view_as(inside) * inside
    while True:
        grown = F.max_pool2d(ids, 3, stride=1, padding=1) * inside
        if torch.equal(grown, ids):
            return ids[:, 0]
        ids = grown


def nms_keep(xy: torch.Tensor, scores: torch.Tensor, radius_px: float) -> torch.Tensor:
    """Exact greedy NMS: indices of kept points, best first.

    Visiting points by descending score (ties in input order), a point is
    dropped if a kept point lies closer than radius_px.  Done block-wise:
    first against points kept in earlier blocks, then inside the block by
    iterating "kept = not near a kept higher-ranked point" to its fixed point,
    which equals the sequential greedy answer.
    """
    import torch

    order = torch.sort(scores, descending=True, stable=True).indices
    points = xy[order].double()
    limit = float(radius_px) ** 2
    kept_points: list[torch.Tensor] = []
    kept_index: list[torch.Tensor] = []
    for start in range(0, len(points), NMS_BLOCK):
        block = points[start : start + NMS_BLOCK]
        alive = torch.ones(len(block), dtype=torch.bool, device=block.device)
        for earlier in kept_points:
            alive &= ~_within(block, earlier, limit).any(dim=1)
        outranked = _within(block, block, limit).tril(diagonal=-1)  # [i, j]: j ranks above i and is near
        keep = alive
        while True:
            updated = alive & ~(outranked & keep[None, :]).any(dim=1)
            if torch.equal(updated, keep):
                break
            keep = updated
        kept_points.append(block[keep])
        kept_index.append(order[start : start + NMS_BLOCK][keep])
    if not kept_index:
        return order
    return torch.cat(kept_index)


def _within(a: torch.Tensor, b: torch.Tensor, limit: float) -> torch.Tensor:
    # Explicit differences, not torch.cdist: cdist's matmul path is inexact near the radius.
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(dim=-1) < limit


def predict(
    model: nn.Module,
    images,
    config: DetectorConfig,
    device="cpu",
    autocast: bool = True,
    nms_radius_um: float = 3.0,
    min_score: float = 0.5,
    batch_size: int = 8,
) -> list[PointSet]:
    """Detect nuclei in RGB uint8 images (B, H, W, 3) at the config's working resolution.

    Moves the model to `device` in eval mode.  On CUDA it runs bf16 autocast in
    channels_last (tensor cores); on CPU plain fp32 so results are reproducible.
    """
    import torch
    from torch.nn import functional as F

    if isinstance(images, np.ndarray):
        images = np.ascontiguousarray(images)
    batch = torch.as_tensor(images)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images (B, H, W, 3), got {batch.dtype} {tuple(batch.shape)}")
    device = torch.device(device)
    on_cuda = device.type == "cuda"
    model = model.to(device).eval()
    if on_cuda:
        model = model.to(memory_format=torch.channels_last)
    mean = torch.tensor(config.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    height, width = batch.shape[1:3]
    # The stride-8 networks need sizes divisible by 8; pad bottom/right so
    # pixel coordinates are unchanged, and mirror so borders look like tissue.
    pad_h, pad_w = -height % 8, -width % 8
    pad_mode = "reflect" if pad_h < height and pad_w < width else "replicate"

    results: list[PointSet] = []
    with torch.inference_mode():
        for start in range(0, len(batch), batch_size):
            x = batch[start : start + batch_size].to(device).permute(0, 3, 1, 2).float().div_(255)
            x = (x - mean) / std
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h), mode=pad_mode)
            if on_cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=on_cuda and autocast):
                logits = model(x)
            probs = logits[:, :, :height, :width].float().softmax(dim=1)
            results.extend(extract_points(probs, config.mpp, nms_radius_um, min_score))
    return results
