"""Tumour / non-tumour classification of detected nuclei (issue 15: "a tumour / non-tumour distinction").

The classic detector finds every nucleus; a report counts tumour nuclei only.  Stromal,
endothelial and inflammatory nuclei counted as tumour dilute or inflate the positive %
(bench/RESULTS-accuracy.md: on SHIDC-B-Ki-67 the classic detector stays 5-6 points off even with a
perfect positivity call, because of the nuclei it counts that are no labelled tumour cell).

This module looks at each detected nucleus in its physical neighbourhood (a window of
``WINDOW_UM`` micrometres, resampled to ``PATCH_PX`` pixels whatever the scan's pixel size) in
stain space (haematoxylin and DAB optical density, so a different scanner's white balance or JPEG
colour changes less) and gives the probability that it is a tumour nucleus.  Pure functions and a
small torch network; torch is imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .stains import DEFAULT_VECTORS, StainVectors, deconvolve

WINDOW_UM = 24.0  # a nucleus (~7 um) and its neighbours: tumour nuclei sit in clusters, stromal ones alone
PATCH_PX = 40
NON_TUMOUR, TUMOUR = 0, 1
CHECKPOINT_FORMAT = "pdl1-nucleus-classifier-1"
H_REFERENCE_OD = 0.4  # the median haematoxylin OD at nuclei after per-field normalisation


@dataclass
class StainImage:
    """A field's haematoxylin and DAB optical density (float32, (2, H, W)) at ``mpp`` µm/px."""

    od: np.ndarray
    mpp: float

    @classmethod
    def from_rgb(cls, rgb: np.ndarray, mpp: float, vectors: StainVectors = DEFAULT_VECTORS,
                 nuclei_xy: np.ndarray | None = None) -> "StainImage":
        """``nuclei_xy`` given: haematoxylin is rescaled so that its median at those nuclei is
        H_REFERENCE_OD.  Why: how dark a lab's haematoxylin is says nothing about tumour or not
        (BCData's negative nuclei are half as dark as SHIDC's), but a classifier trained on one
        lab's darkness reads pale nuclei elsewhere as non-tumour."""
        h, dab = deconvolve(np.asarray(rgb)[..., :3], vectors)
        h = np.clip(h, 0, None)
        if nuclei_xy is not None and len(nuclei_xy):
            h = h * (H_REFERENCE_OD / max(nuclear_median(h, nuclei_xy), 0.02))
        return cls(np.stack([h, np.clip(dab, 0, None)]).astype(np.float32), float(mpp))


def nuclear_median(channel: np.ndarray, xy: np.ndarray) -> float:
    """Median of ``channel`` at the nuclei's centre pixels (x, y px)."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    cols = np.clip(np.round(xy[:, 0]).astype(int), 0, channel.shape[1] - 1)
    rows = np.clip(np.round(xy[:, 1]).astype(int), 0, channel.shape[0] - 1)
    return float(np.median(channel[rows, cols]))


def patches(image: StainImage, xy: np.ndarray, scale: np.ndarray | float = 1.0,
            angle: np.ndarray | float = 0.0, flip: np.ndarray | bool = False) -> np.ndarray:
    """(N, 2, PATCH_PX, PATCH_PX) float32 windows of WINDOW_UM µm centred on ``xy`` (x, y px).

    ``scale`` (>1 shows more tissue), ``angle`` (radians) and ``flip`` may be per nucleus: that is
    how training augments; inference uses the defaults.  Outside the image reads as zero OD (glass).
    """
    from scipy.ndimage import map_coordinates

    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    n = len(xy)
    out = np.zeros((n, 2, PATCH_PX, PATCH_PX), np.float32)
    if n == 0:
        return out
    step = WINDOW_UM / PATCH_PX / image.mpp  # source pixels per patch pixel
    g = (np.arange(PATCH_PX) - (PATCH_PX - 1) / 2.0) * step
    gy, gx = np.meshgrid(g, g, indexing="ij")
    scale = np.broadcast_to(np.asarray(scale, np.float64), (n,))
    angle = np.broadcast_to(np.asarray(angle, np.float64), (n,))
    flip = np.broadcast_to(np.asarray(flip, bool), (n,))
    c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    fx = np.where(flip[:, None, None], -gx, gx)
    dx = scale[:, None, None] * (c * fx - s * gy)
    dy = scale[:, None, None] * (s * fx + c * gy)
    rows = xy[:, 1, None, None] + dy
    cols = xy[:, 0, None, None] + dx
    for ch in range(2):
        out[:, ch] = map_coordinates(image.od[ch], [rows, cols], order=1, mode="constant", cval=0.0)
    return out


def build_net():
    """A small CNN: four conv stages, global pooling, two logits (non-tumour, tumour)."""
    import torch.nn as nn

    def stage(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    return nn.Sequential(stage(2, 24), nn.MaxPool2d(2), stage(24, 48), nn.MaxPool2d(2), stage(48, 96), nn.MaxPool2d(2),
                         stage(96, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, 2))


@dataclass
class TrainingField:
    """A field's stain image, its detected nuclei and each one's target (TUMOUR / NON_TUMOUR)."""

    name: str
    image: StainImage
    xy: np.ndarray
    target: np.ndarray
    source: str = ""


@dataclass
class ClassifierReport:
    steps: int
    n_tumour: int
    n_non_tumour: int
    losses: list = field(default_factory=list)


def augment_batch(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Stain-intensity jitter per patch: each channel scaled by 0.65-1.5 and offset a little, the
    spread between labs' staining and scanners (BCData's negatives are half as dark as SHIDC's)."""
    n = len(x)
    gain = np.exp(rng.uniform(np.log(0.65), np.log(1.5), (n, 2, 1, 1))).astype(np.float32)
    offset = rng.normal(0, 0.02, (n, 2, 1, 1)).astype(np.float32)
    return np.clip(x * gain + offset, 0, None)


def train(fields: list[TrainingField], steps: int = 600, batch: int = 96, lr: float = 2e-3, seed: int = 0,
          log_every: int = 0) -> tuple[object, ClassifierReport]:
    """Train the classifier on these fields' nuclei (class-balanced batches; scale ±20 %, any
    rotation, flips and stain-intensity jitter).  Returns (net in eval mode, report)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    index = [(i, j) for i, f in enumerate(fields) for j in range(len(f.xy))]
    if not index:
        raise ValueError("no nuclei to train the nucleus classifier on")
    targets = np.array([fields[i].target[j] for i, j in index])
    by_class = [np.flatnonzero(targets == c) for c in (NON_TUMOUR, TUMOUR)]
    if any(len(b) == 0 for b in by_class):
        raise ValueError("the nucleus classifier needs tumour and non-tumour examples")
    net = build_net()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    loss_fn = torch.nn.CrossEntropyLoss()
    report = ClassifierReport(steps, len(by_class[TUMOUR]), len(by_class[NON_TUMOUR]))
    net.train()
    for step in range(steps):
        pick = np.concatenate([rng.choice(b, batch // 2) for b in by_class])
        x = np.zeros((len(pick), 2, PATCH_PX, PATCH_PX), np.float32)
        y = targets[pick]
        rows = [index[k] for k in pick]
        for i in {r[0] for r in rows}:
            sel = [k for k, r in enumerate(rows) if r[0] == i]
            js = [rows[k][1] for k in sel]
            m = len(sel)
            x[sel] = patches(fields[i].image, fields[i].xy[js], scale=rng.uniform(0.8, 1.25, m),
                             angle=rng.uniform(0, 2 * np.pi, m), flip=rng.random(m) < 0.5)
        x = augment_batch(rng, x)
        out = net(torch.from_numpy(x))
        loss = loss_fn(out, torch.from_numpy(y.astype(np.int64)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        report.losses.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            print(f"  step {step + 1}/{steps} loss {np.mean(report.losses[-log_every:]):.3f}", flush=True)
    net.eval()
    return net, report


def tumour_probability(net, image: StainImage, xy: np.ndarray, tta: bool = True, chunk: int = 512) -> np.ndarray:
    """P(tumour) for each nucleus at ``xy``; ``tta`` averages the eight flips / right-angle turns."""
    import torch

    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    if len(xy) == 0:
        return np.zeros(0, np.float32)
    views = [(a, f) for a in (0.0, np.pi / 2, np.pi, 3 * np.pi / 2) for f in (False, True)] if tta else [(0.0, False)]
    prob = np.zeros(len(xy), np.float64)
    with torch.no_grad():
        for angle, flip in views:
            for start in range(0, len(xy), chunk):
                x = patches(image, xy[start:start + chunk], angle=angle, flip=flip)
                prob[start:start + chunk] += torch.softmax(net(torch.from_numpy(x)), 1)[:, TUMOUR].numpy()
    return (prob / len(views)).astype(np.float32)


def save(net, path, meta: dict) -> None:
    import torch

    torch.save({"format": CHECKPOINT_FORMAT, "window_um": WINDOW_UM, "patch_px": PATCH_PX, "meta": meta,
                "state_dict": net.state_dict()}, path)


def load(path):
    """(net in eval mode, meta) from a file written by save(); a clear error for anything else."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  torch raises many types for a bad file
        raise ValueError(f"{path}: not a readable nucleus classifier ({exc})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} file")
    if checkpoint["window_um"] != WINDOW_UM or checkpoint["patch_px"] != PATCH_PX:
        raise ValueError(f"{path}: window {checkpoint['window_um']} µm / {checkpoint['patch_px']} px, "
                         f"this code reads {WINDOW_UM} µm / {PATCH_PX} px")
    net = build_net()
    net.load_state_dict(checkpoint["state_dict"])
    net.eval()
    return net, checkpoint["meta"]
