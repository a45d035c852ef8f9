"""What a training run is asked to do: TrainConfig, its checks, the device and the learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .loss import LossWeights
from .nets import DetectorConfig


class TrainingError(ValueError):
    """Bad configuration or output folder; the message says what to change."""


@dataclass
class TrainConfig:
    out_dir: str
    sources: tuple[str, ...] = ("synthetic",)
    # Relative share of each source in a batch, in the order of `sources`; None = equal shares.
    # Why: a few real fields next to many SYNTHETIC ones; equal shares pulled a fine-tune
    # towards the real fields at the cost of the synthetic ones (analysis/starter/MODEL_CARD.md).
    source_weights: tuple[float, ...] | None = None
    name: str = ""
    arch: str = "fcn"
    backbone: str = "resnet18"
    steps: int = 1000
    batch_size: int = 8
    # 128 px (64 µm at 0.5 µm/px, ~6-25 nuclei): the dilated stride-8 ResNet costs ~4x less per
    # crop than at 256 px, so a CPU run does ~4x more optimizer steps in the same time; steps,
    # not pixels per step, limited the first (256 px, F1 ~0.42 after ~1 h) starter attempt.
    crop: int = 128
    mpp: float = 0.5
    # With the rebalanced terms below, 5e-4 (after a 1e-3 phase) trained stably; 1e-4 was slow.
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 100
    resume: bool = False
    # Stop (with a checkpoint) once this many steps are done in total, or after
    # this many minutes: for time-sliced runs and resume tests.  The schedule
    # still runs to `steps`.
    stop_at_step: int | None = None
    max_minutes: float | None = None
    val_every: int = 0  # 0: validate only at the end
    synthetic_train: int = 64
    synthetic_val: int = 8
    synthetic_size: int = 384
    stain_sigma: float = 0.05
    stain_bias: float = 0.05
    # Random rescale of each crop by up to this fraction (log-uniform in [1/(1+j), 1+j]):
    # the pixel sizes of the real sources are estimates (±20 %), and scanners differ.
    scale_jitter: float = 0.0
    nms_radius_um: float = 3.0
    match_radius_um: float = 4.0
    half: bool = False  # store the final model in fp16 (the shipped starter)
    # Exhaustively annotated fields (synthetic, DeepLIIF, complete exports): pixels farther than
    # this from every click are background.  The LCFCN terms alone leave flat background near
    # p(background) = 0.5, which the peak finder (foreground >= 0.5) turns into false detections.
    # background_weight = 0 gives plain LCFCN (for sparsely clicked data).
    background_radius_um: float = 7.0
    # Weight 20 for both the far-background term and the (disc) point term, see below.
    background_weight: float = 20.0
    # Point term over a disc of this radius around each click instead of the clicked pixel
    # alone (loss.point_disc_targets says why); 0 = LCFCN's single pixel.
    point_radius_um: float = 1.5

    init_from: str | None = None  # start from these weights (model or training checkpoint): fine-tuning
    progress: bool = True
    # Why point = 20 (and background_weight = 20): the split and false-positive terms push each of
    # their pixels to background with weight 1 to (points + 1), while the disc point term gives
    # each disc pixel ~1/29 and the far-background term each pixel ~clicks / far pixels.  With
    # weights 1 the network settled at p(background) ~ 0.5 on the nuclei themselves (measured:
    # foreground 0.51 at the clicks after 400 steps, 16-38 % of all pixels above 0.5, held-out
    # SYNTHETIC F1 ~0.5) although it already told the classes apart (>= 90 % right among
    # non-background).  Scaling point and far-background terms by 20 (disc pixels ~0.7 each)
    # lifted foreground at the clicks to ~0.9 and F1 to 0.8-0.98 within 50 steps; split/FP
    # terms keep their LCFCN weights and still carve boundaries between touching nuclei.
    loss_weights: LossWeights = field(default_factory=lambda: LossWeights(point=20.0))

    def detector_config(self) -> DetectorConfig:
        return DetectorConfig(arch=self.arch, backbone=self.backbone, mpp=self.mpp)


def validate_config(config: TrainConfig) -> None:
    from .nets import ARCHS, BACKBONES

    problems = []
    if config.arch not in ARCHS:
        problems.append(f"arch must be one of {', '.join(ARCHS)}")
    if config.backbone not in BACKBONES:
        problems.append(f"backbone must be one of {', '.join(BACKBONES)}")
    if config.steps < 1:
        problems.append("steps must be >= 1")
    if config.batch_size < 1:
        problems.append("batch size must be >= 1")
    if config.crop < 32 or config.crop % 8:
        problems.append("crop must be a multiple of 8, >= 32 (the network has output stride 8)")
    if not 0.05 <= config.mpp <= 20:
        problems.append("mpp must be in [0.05, 20] µm/px")
    if config.checkpoint_every < 1:
        problems.append("checkpoint_every must be >= 1")
    if config.device not in ("auto", "cpu", "cuda") and not config.device.startswith("cuda:"):
        problems.append("device must be auto, cpu or cuda")
    if not config.sources:
        problems.append("give at least one source")
    if config.source_weights is not None and (
        len(config.source_weights) != len(config.sources)
        or not all(math.isfinite(w) and w > 0 for w in config.source_weights)
    ):
        problems.append(f"source weights must be {len(config.sources)} positive numbers, one per source in order")
    if not (math.isfinite(config.lr) and config.lr > 0):
        problems.append("lr must be a positive number")
    if config.warmup_steps < 0:
        problems.append("warmup steps must be >= 0")
    if config.max_minutes is not None and not (math.isfinite(config.max_minutes) and config.max_minutes > 0):
        problems.append("max minutes must be a positive number")
    if config.val_every < 0:
        problems.append("val_every must be >= 0")
    if not (math.isfinite(config.background_weight) and config.background_weight >= 0):
        problems.append("background weight must be a number >= 0")
    if not (math.isfinite(config.background_radius_um) and config.background_radius_um > 0):
        problems.append("background radius must be a positive number of µm")
    if not all(math.isfinite(v) and v >= 0 for v in (config.stain_sigma, config.stain_bias)):
        problems.append("stain sigma and bias must be numbers >= 0")
    if not (math.isfinite(config.scale_jitter) and 0 <= config.scale_jitter <= 1):
        problems.append("scale jitter must be a number in [0, 1]")
    if not (math.isfinite(config.point_radius_um) and config.point_radius_um >= 0):
        problems.append("point radius must be a number of µm >= 0")
    bad_terms = [k for k, v in asdict(config.loss_weights).items() if not (math.isfinite(v) and v >= 0)]
    if bad_terms:
        problems.append(f"loss weights must be numbers >= 0 ({', '.join(bad_terms)})")
    if config.init_from and not Path(config.init_from).is_file():
        problems.append(f"init_from checkpoint {config.init_from} not found")
    if problems:
        raise TrainingError("; ".join(problems))


def training_device(name: str):
    """The torch device to train on (analysis.detectors.resolve_device); a CUDA one needs a GPU."""
    import torch

    from .detectors import resolve_device

    device = torch.device(resolve_device(name))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device cuda requested but no CUDA GPU is available")
    return device


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak at `steps`."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def config_dict(config: TrainConfig) -> dict:
    d = asdict(config)
    d["sources"] = list(config.sources)
    d["source_weights"] = list(config.source_weights) if config.source_weights else None
    return d
