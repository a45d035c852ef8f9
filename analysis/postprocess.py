"""From detector probability maps to one point per nucleus.

Peaks of the foreground probability (1 - p(background)) are found with
max-pooling; flat-topped peaks (plateaus, common once logits saturate or are
rounded to bf16) are collapsed to their centroid; then a greedy non-maximum
suppression with a radius in µm keeps one point per nucleus regardless of
class.  Everything is torch ops, batched over the whole batch, so it runs
where the probabilities live (GPU or CPU); every step is order-independent or
integer-exact so results are deterministic.

extract_points is built to cost a few per cent of the forward pass:

* peaks: the pooling window's maximum is taken separably and by doubling
  (about 8 elementwise maxima for a 9 x 9 window, instead of 81 comparisons
  per pixel), on the full-resolution map, so peaks are exactly the reference's;
* plateaus: 8-connected groups of peak pixels are labelled on the sparse list
  of peak pixels (the few edges between adjacent ones found through a dense
  pixel -> peak map), by min-label hooking with pointer jumping.  A blob-shaped
  plateau of width D settles in about log2(D) rounds, a 1-px serpentine in
  about one round per turn; rounds run PLATEAU_ROUNDS at a time between
  convergence checks, so any realistic plateau costs one check, and a batch
  without adjacent peak pixels none;
* NMS: exact greedy, solved in parallel.  Candidates are bucketed into square
  cells a little wider than the radius, so each one compares only with the
  candidates in its 3 x 3 cells; then "kept iff no higher-ranked neighbour is
  kept" is resolved for every candidate at once, NMS_ROUNDS rounds between
  checks (a round settles at least one more link of a chain of overlapping
  candidates; real maps need one check);
* per batch a handful of small syncs (sizes of the sparse lists, the
  convergence checks) and one device-to-host copy, of the kept points.

The previous implementation (max-pooling float64 ids over the full map until
nothing changes, with a host sync per step; a copy per image) is kept below as
the reference (_reference_extract_points), its NMS the platform's one host NMS
(analysis.nms: the same greedy rule): extract_points returns exactly its
points (same positions, labels, scores and order; tests compare them on random
and real maps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .nms import greedy_order

if TYPE_CHECKING:
    import torch
    from torch import nn

    from analysis.nets import DetectorConfig

PLATEAU_ROUNDS = 8  # plateau labelling rounds between convergence checks
NMS_ROUNDS = 4  # parallel NMS rounds between convergence checks
_KEPT, _SUPPRESSED = 1, 2  # NMS states; 0 = undecided


@dataclass
class PointSet:
    """Detections of one image; x = column, y = row, in pixels of the input (pixel centres at integers)."""

    xy: np.ndarray  # float32 (N, 2)
    labels: np.ndarray  # int8 (N,): 1 positive, 2 negative
    scores: np.ndarray  # float32 (N,): probability of the label at the peak

    def __len__(self) -> int:
        return len(self.labels)


class NonFiniteOutputs(ValueError):
    """Probabilities holding NaN or infinity: a NaN pixel fails its whole pooling window's peak test, so
    the image would silently lose its cells (an all-NaN map: none). `images`: their indices in the batch."""

    def __init__(self, images: list[int]):
        self.images = list(images)
        super().__init__(f"non-finite probabilities (NaN or infinite) in image(s) {', '.join(map(str, self.images))}")


def _check_finite(probs) -> None:
    import torch

    finite = torch.isfinite(probs)
    if not bool(finite.all()):  # one reduction and one sync per batch; the images only when some are not
        raise NonFiniteOutputs((~finite).flatten(1).any(dim=1).nonzero().flatten().tolist())


def _as_probs(probs):
    import torch

    probs = torch.as_tensor(probs).detach()
    if probs.ndim != 4 or probs.shape[1] < 2:
        raise ValueError(f"expected probabilities (B, C>=2, H, W), got {tuple(probs.shape)}")
    return probs.float()


def _pool_half(radius_px: float) -> int:
    # Pool over the square inscribed in the NMS disc, so pooling only drops
    # pixels that a higher pixel within the radius outranks; NMS then enforces
    # the full disc.
    return max(1, int(radius_px / math.sqrt(2)))


def extract_points(probs, mpp: float, nms_radius_um: float = 3.0, min_score: float = 0.5) -> list[PointSet]:
    """One PointSet per image of probs (B, C, H, W): softmax output, tensor (any device) or numpy.

    Raises NonFiniteOutputs when any probability is NaN or infinite (a broken network or input): the
    peaks would otherwise drop those images' cells without a word."""
    import torch

    probs = _as_probs(probs)
    _check_finite(probs)
    n_images, n_classes, height, width = probs.shape
    radius_px = nms_radius_um / mpp
    foreground = 1.0 - probs[:, 0]
    is_peak = (foreground == _window_max(foreground, _pool_half(radius_px))) & (foreground >= min_score)

    image, row, col = is_peak.nonzero(as_tuple=True)  # row-major order
    if len(row) == 0:
        return _split_points(np.zeros((0, 5)), n_images)
    groups = _plateau_groups(image, row, col, n_images, height, width)
    # Class at the peak, among non-background: a flat gather (advanced indexing with a slice is
    # ~100x slower on CPU).
    if not (probs.is_contiguous() or probs.is_contiguous(memory_format=torch.channels_last)):
        probs = probs.contiguous()
    stride = probs.stride()
    storage = probs.as_strided((probs.numel(),), (1,), probs.storage_offset())
    at = groups.image * stride[0] + groups.row * stride[2] + groups.col * stride[3]
    per_class = torch.stack([_take(storage, at + c * stride[1]) for c in range(1, n_classes)], dim=1)
    scores, labels = per_class.max(dim=1)
    labels = labels + 1
    # Rank as the reference does: per image, by score, ties by the group's last pixel in row-major order.
    rank = _rank(groups.image, scores, groups.tie, groups.valid, n_images)
    keep = _greedy_nms(_take(groups.image, rank), _take(groups.xy, rank), _take(groups.valid, rank), radius_px,
                       n_images, height, width)
    kept = _take(rank, keep)
    packed = torch.stack([_take(groups.image, kept).double(), *_take(groups.xy, kept).float().double().unbind(1),
                          _take(labels, kept).double(), _take(scores, kept).double()], dim=1)
    return _split_points(packed.cpu().numpy(), n_images)  # the one copy to the host


def _window_max(values, half: int):
    """Maximum over the (2 half + 1)² window around each pixel of (B, H, W), -inf outside.

    Equal to max_pool2d(kernel 2 half + 1, stride 1, padding half), but separable and by
    doubling: about 2 log2(2 half + 1) elementwise maxima instead of a k x k window per pixel.
    """
    import torch
    from torch.nn import functional as F

    size = 2 * half + 1
    out = F.pad(values, (half, half, half, half), value=-math.inf)
    for dim in (1, 2):
        span = 1  # out[i] holds the maximum of the span elements from i
        while span < size:
            step = min(span, size - span)
            n = out.shape[dim] - step
            out = torch.maximum(out.narrow(dim, 0, n), out.narrow(dim, step, n))
            span += step
    return out


def _split_points(packed: np.ndarray, n_images: int) -> list[PointSet]:
    """Rows (image, x, y, label, score), sorted by image, to one PointSet per image."""
    bounds = np.searchsorted(packed[:, 0], np.arange(n_images + 1) - 0.5)
    return [
        PointSet(xy=packed[a:b, 1:3].astype(np.float32), labels=packed[a:b, 3].astype(np.int8),
                 scores=packed[a:b, 4].astype(np.float32))
        for a, b in zip(bounds[:-1], bounds[1:])
    ]


@dataclass
class _Groups:
    """Per peak pixel; only entries with valid set (one per plateau, its first pixel) are groups."""

    valid: torch.Tensor  # bool
    image: torch.Tensor  # image index
    xy: torch.Tensor  # float64 centroid (x = column, y = row)
    row: torch.Tensor  # member nearest the centroid, where class and score are read
    col: torch.Tensor
    tie: torch.Tensor  # flat index of the group's last pixel (the reference's tie order)


def _take(values, index):
    """values[index] along dim 0.  index_select, not advanced indexing: on a busy CPU the latter
    costs milliseconds per call even for a few thousand elements."""
    return values.index_select(0, index.reshape(-1)).view(*index.shape, *values.shape[1:])


def _plateau_groups(image, row, col, n_images: int, height: int, width: int) -> _Groups:
    """Collapse each 8-connected group of peak pixels (given row-major) to one point, like the reference."""
    import torch

    n = len(row)
    device = row.device
    member = torch.arange(n, device=device)
    flat = (image * height + row) * width + col  # ascending: nonzero is row-major
    # Edges between 8-adjacent peak pixels, each found once from its first pixel in row-major
    # order, through a dense map pixel -> peak index (-1 elsewhere).
    index_map = torch.full((n_images * height * width,), -1, dtype=torch.int32, device=device)
    index_map.index_copy_(0, flat, member.to(torch.int32))
    d_row = torch.tensor([0, 1, 1, 1], device=device)[:, None]
    d_col = torch.tensor([1, -1, 0, 1], device=device)[:, None]
    inside = (row + d_row < height) & (col + d_col >= 0) & (col + d_col < width)
    target = (flat + d_row * width + d_col).clamp_(max=len(index_map) - 1)
    other = _take(index_map, target).long()
    which, first = (inside & (other >= 0)).nonzero(as_tuple=True)
    label = member
    if len(first):  # no adjacent peak pixels (no plateau): nothing to label
        second = _take(other.view(-1), which * n + first)
        a, b = torch.cat([first, second]), torch.cat([second, first])

        def step(label):
            # Hook each pixel to the smallest label next to it, then jump twice along the labels.
            label = label.scatter_reduce(0, a, _take(label, b), "amin")
            label = _take(label, label)
            return _take(label, label)

        while True:
            for _ in range(PLATEAU_ROUNDS):
                label = step(label)
            settled = step(label)
            if torch.equal(settled, label):  # fixed point: every pixel holds its group's smallest index
                break
            label = settled

    def group_sum(values):
        return torch.zeros(n, dtype=values.dtype, device=device).index_add_(0, label, values)

    # Same arithmetic as the reference (integer sums, float64 centroid), so the same bits.
    valid = label == member
    count = torch.where(valid, group_sum(torch.ones_like(row)).double(), 1.0)
    centre_y, centre_x = group_sum(row) / count, group_sum(col) / count
    dist2 = (row - _take(centre_y, label)) ** 2 + (col - _take(centre_x, label)) ** 2
    nearest = torch.full((n,), math.inf, dtype=torch.float64, device=device).scatter_reduce(0, label, dist2, "amin")
    candidate = torch.where(dist2 == _take(nearest, label), member, n)  # ties: first in row-major order
    chosen = torch.full((n,), n, device=device).scatter_reduce(0, label, candidate, "amin")
    chosen = torch.where(valid, chosen, member)
    tie = torch.zeros(n, dtype=flat.dtype, device=device).scatter_reduce(0, label, flat, "amax")
    return _Groups(valid, image, torch.stack([centre_x, centre_y], dim=1), _take(row, chosen), _take(col, chosen), tie)


def _rank(image, scores, tie, valid, n_images: int):
    """Indices by image, then score descending, then tie ascending; invalid entries last."""
    import torch

    order = torch.sort(tie, stable=True).indices
    order = _take(order, torch.sort(_take(scores, order), descending=True, stable=True).indices)
    key = _take(torch.where(valid, image, n_images), order)
    return _take(order, torch.sort(key, stable=True).indices)


def _greedy_nms(image, xy, valid, radius_px: float, n_images: int, height: float, width: float, origin=None):
    """Exact greedy NMS of candidates given in rank order: indices of those kept, in rank order.

    A candidate is kept iff no kept higher-ranked candidate of its image lies
    closer than radius_px - the sequential greedy rule, resolved for all
    candidates at once.  xy - origin must lie in [0, width] x [0, height].
    """
    import torch

    n = len(xy)
    device = xy.device
    if n == 0 or radius_px <= 0:
        return torch.nonzero(valid).squeeze(1)
    limit = float(radius_px) ** 2
    # Cells a little wider than the radius (so a neighbour is never two cells away), a border of
    # empty cells all round, and one more cell at the end for the invalid entries.
    cell = float(radius_px) * (1 + 1e-6)
    rows_c, cols_c = int(height // cell) + 3, int(width // cell) + 3
    n_cells = n_images * rows_c * cols_c
    at = xy if origin is None else xy - origin  # only places candidates in cells
    cy = torch.floor(at[:, 1] / cell).long() + 1
    cx = torch.floor(at[:, 0] / cell).long() + 1
    key = torch.where(valid, (image * rows_c + cy) * cols_c + cx, n_cells)
    by_cell = torch.sort(key, stable=True).indices
    count = torch.zeros(n_cells + 1, dtype=torch.long, device=device).index_add_(0, key, torch.ones_like(key))
    start = torch.cumsum(count, 0) - count
    count[n_cells] = 0  # invalid entries are nobody's neighbours
    around = key[None, :] + torch.tensor([dy * cols_c + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
                                         device=device)[:, None]
    around = torch.where(valid[None, :], around, n_cells)  # (9, n)
    first, many = _take(start, around), _take(count, around)
    depth = int(count.max())  # most candidates in one cell
    slot = first[None] + torch.arange(depth, device=device)[:, None, None]  # (depth, 9, n)
    filled = slot < (first + many)[None]
    other = _take(by_cell, slot.clamp_(max=n - 1))
    me = torch.arange(n, device=device)
    # Candidate pairs: a higher-ranked (smaller index) candidate in a neighbouring cell.
    pair = (filled & (other < me)).view(-1).nonzero().squeeze(1)
    if len(pair) == 0:
        return torch.nonzero(valid).squeeze(1)
    lower, upper = pair % n, _take(other.view(-1), pair)
    # Explicit differences, as the reference: the same float64 arithmetic decides "within".
    near = (((_take(xy, lower) - _take(xy, upper)) ** 2).sum(dim=-1) < limit).to(torch.int32)

    def count_above(flags):  # over the pairs closer than the radius
        return torch.zeros(n, dtype=torch.int32, device=device).index_add_(0, lower, flags.to(torch.int32) * near)

    state = torch.where(valid, 0, _SUPPRESSED).to(torch.int8)
    n_above = count_above(torch.ones_like(lower))
    while True:
        for _ in range(NMS_ROUNDS):
            seen = _take(state, upper)
            kept_above = count_above(seen == _KEPT) > 0
            ready = kept_above | (count_above(seen == _SUPPRESSED) == n_above)
            decided = torch.where(kept_above, _SUPPRESSED, _KEPT).to(torch.int8)
            state = torch.where((state == 0) & ready, decided, state)
        if not bool((state == 0).any()):
            break
    return torch.nonzero(state == _KEPT).squeeze(1)


def nms_keep(xy: torch.Tensor, scores: torch.Tensor, radius_px: float) -> torch.Tensor:
    """The on-device solver of extract_points applied to one point set: indices of kept points,
    best first.  The rule and its answer are analysis.nms's (tests compare them)."""
    import torch

    xy = torch.as_tensor(xy).double()
    scores = torch.as_tensor(scores)
    order = torch.sort(scores, descending=True, stable=True).indices
    if len(order) == 0:
        return order
    points = _take(xy, order)
    low = points.min(dim=0).values
    span = (points.max(dim=0).values - low).tolist()
    zeros = torch.zeros(len(order), dtype=torch.long, device=order.device)
    valid = torch.ones(len(order), dtype=torch.bool, device=order.device)
    return _take(order, _greedy_nms(zeros, points, valid, radius_px, 1, span[1], span[0], origin=low))


# --------------------------------------------------------------------------- greedy reference
# The implementation extract_points replaced (one host sync per plateau growth step and per NMS
# block, one copy per image): kept to define the answer; extract_points must equal it.


def _reference_extract_points(probs, mpp: float, nms_radius_um: float = 3.0, min_score: float = 0.5) -> list[PointSet]:
    """The previous extract_points, kept as the greedy reference (tests, bench): same output, slower."""
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

    image, xy, row, col = _reference_plateau_points(is_peak)
    scores, labels = probs[image, 1:, row, col].max(dim=1)  # class at the peak, among non-background
    labels = labels + 1
    results = []
    for i in range(probs.shape[0]):
        mine = torch.nonzero(image == i).squeeze(1)
        kept = mine[torch.as_tensor(greedy_order(xy[mine].cpu().numpy(), scores[mine].cpu().numpy(), radius_px),
                                    dtype=torch.long, device=mine.device)]
        results.append(
            PointSet(
                xy=xy[kept].float().cpu().numpy(),
                labels=labels[kept].to(torch.int8).cpu().numpy(),
                scores=scores[kept].cpu().numpy(),
            )
        )
    return results


def _reference_plateau_points(is_peak: torch.Tensor):
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
    _, group = torch.unique(_reference_component_ids(is_peak)[image, row, col], return_inverse=True)
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


def _reference_component_ids(mask: torch.Tensor) -> torch.Tensor:
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
