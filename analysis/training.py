"""Training loop for the point-supervised detector (no Django; the command is a thin wrapper).

train(TrainConfig) builds the detector, draws batches of random crops with
augmentation, optimises the LCFCN loss with AdamW under a warm-up + cosine
learning rate, writes resumable checkpoints, validates on held-out fields
with postprocess.predict + matching.evaluate, and writes the model and its
model card (Markdown + JSON).

Reproducibility: the batch and the dropout of step s are drawn from
generators seeded with (seed, s), not from a stream carried across steps, so
a resumed run draws exactly what an uninterrupted one would; the checkpoint
still stores the torch RNG state, optimizer state and step.  On CPU two runs
with the same seed give the same weights.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import augment, datasets
from .loss import LossWeights, point_supervised_loss
from .nets import DetectorConfig

CHECKPOINT_NAME = "last.pt"
MODEL_NAME = "model.pt"
CARD_MD, CARD_JSON = "MODEL_CARD.md", "model_card.json"
TRAIN_STATE_FORMAT = "pdl1-detector-train-state"
CLASS_KEYS = {1: "positive", 2: "negative"}
NOT_TUMOUR = -1  # label of a labelled non-tumour nucleus (lymphocyte) inside make_batch


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


@dataclass
class TrainResult:
    model_path: Path
    card_path: Path
    card_json_path: Path
    checkpoint_path: Path
    steps_done: int
    finished: bool  # False when stopped early by stop_at_step / max_minutes
    metrics: dict
    card: dict


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


def evaluate_samples(model, det: DetectorConfig, samples, device, nms_radius_um=3.0, match_radius_um=4.0) -> dict:
    """Metrics per source and over all: pooled per-class counts, positive-percentage error per field."""
    from .matching import ClassMetrics, evaluate
    from .postprocess import predict

    groups: dict[str, list] = {}
    for s in samples:
        groups.setdefault(s.source, []).append(s)
    out = {}
    for source, group in groups.items():
        counts = {c: [0, 0, 0] for c in (0, *CLASS_KEYS)}  # class 0 = class-agnostic detection
        pct_errors = []
        for s in group:
            pred = predict(model, s.rgb[None], det, device=device, nms_radius_um=nms_radius_um)[0]
            ev = evaluate(pred.xy, pred.labels, s.xy, s.labels, det.mpp, radius_um=match_radius_um,
                          ignore_xy=s.ignore_xy)
            for c, m in [(0, ev.detection)] + [(c, ev.per_class[c]) for c in CLASS_KEYS]:
                counts[c][0] += m.tp
                counts[c][1] += m.n_pred
                counts[c][2] += m.n_truth
            if not math.isnan(ev.positive_pct_abs_error):
                pct_errors.append(ev.positive_pct_abs_error)
        pooled = {c: ClassMetrics.from_counts(*counts[c]).to_dict() for c in counts}
        out[source] = {
            "fields": len(group),
            "synthetic": any(s.synthetic for s in group),
            "detection": pooled[0],
            "per_class": {CLASS_KEYS[c]: pooled[c] for c in CLASS_KEYS},
            "positive_pct_abs_error_mean": float(np.mean(pct_errors)) if pct_errors else None,
            "positive_pct_abs_error_max": float(np.max(pct_errors)) if pct_errors else None,
        }
    return out


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


def _weights_from(path) -> dict:
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict) and checkpoint.get("format") == TRAIN_STATE_FORMAT:
        return checkpoint["model"]
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        return {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    raise TrainingError(f"init_from: {path} is neither a model nor a training checkpoint")


def _save_state(path: Path, step: int, model, optimizer, config: TrainConfig) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "format": TRAIN_STATE_FORMAT,
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "config": json.dumps(_config_dict(config)),
        },
        tmp,
    )
    os.replace(tmp, path)  # a run killed while saving keeps the previous checkpoint


def _config_dict(config: TrainConfig) -> dict:
    d = asdict(config)
    d["sources"] = list(config.sources)
    d["source_weights"] = list(config.source_weights) if config.source_weights else None
    return d


def train(config: TrainConfig) -> TrainResult:
    import torch
    from tqdm import tqdm

    from .nets import build_detector_from_config, save_checkpoint

    validate_config(config)
    device = training_device(config.device)
    out = Path(config.out_dir)
    state_path = out / CHECKPOINT_NAME
    if state_path.exists() and not config.resume:
        raise TrainingError(f"{out} already holds a training checkpoint: pass resume (--resume), or use another output folder")

    samples = datasets.load_sources(
        config.sources, config.mpp, seed=config.seed, synthetic_train=config.synthetic_train,
        synthetic_val=config.synthetic_val, synthetic_size=config.synthetic_size,
    )
    train_sets = [[s for s in samples if s.source == src and s.split == "train"] for src in config.sources]
    empty = [src for src, pool in zip(config.sources, train_sets) if not pool]
    if empty:
        raise TrainingError(f"no training fields in source(s): {', '.join(empty)}")
    val_samples = [s for s in samples if s.split == "val"]
    out.mkdir(parents=True, exist_ok=True)  # only now: a bad source leaves nothing behind

    det = config.detector_config()
    torch.manual_seed(config.seed)  # initial weights
    model = build_detector_from_config(det).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start = 0
    if config.init_from and not (config.resume and state_path.exists()):
        model.load_state_dict(_weights_from(config.init_from))
    if config.resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        saved = json.loads(state["config"])
        # `steps` may change, to extend or shorten a run: the schedule then follows the new
        # total, so only an unchanged config reproduces the uninterrupted run exactly.
        for key in ("arch", "backbone", "mpp", "seed", "batch_size", "crop"):
            if saved[key] != getattr(config, key):
                raise TrainingError(f"cannot resume: checkpoint has {key}={saved[key]!r}, now {getattr(config, key)!r}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["step"])

    on_cuda = device.type == "cuda"
    # channels_last: a training step (128 px crops, 2 CPU cores) measured faster in it than in
    # NCHW (oneDNN), and CUDA tensor cores want it too; the same ops run every time, so CPU
    # training stays deterministic (the resume test checks bit-identical weights).
    model = model.to(memory_format=torch.channels_last)
    began = time.monotonic()
    history = []
    step = start
    bar = tqdm(total=config.steps, initial=start, disable=not config.progress, desc="train", dynamic_ncols=True)
    while step < config.steps:
        if config.stop_at_step is not None and step >= config.stop_at_step:
            break
        if config.max_minutes is not None and time.monotonic() - began > 60 * config.max_minutes:
            break
        rng = np.random.default_rng([config.seed, step])
        torch.manual_seed(config.seed * 1_000_003 + step)  # dropout of this step
        x, points, not_tumour = make_batch(train_sets, config, rng)
        x, points = x.to(device).contiguous(memory_format=torch.channels_last), points.to(device)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        model.train()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=on_cuda):
            logits = model(x)
        terms = point_supervised_loss(logits, points, x, config.loss_weights,
                                      point_radius_px=config.point_radius_um / config.mpp)
        total = terms.total
        far = None
        if config.background_weight:
            far = far_background_term(logits, points, config.background_radius_um / config.mpp,
                                      not_tumour, config.point_radius_um / config.mpp)
            total = total + config.background_weight * far
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        step += 1
        loss = float(total.detach())
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{learning_rate(config, step - 1):.1e}")
        if step % 10 == 0 or step == config.steps:
            # Each term's magnitude, to see which one dominates or stalls.
            history.append({"step": step, "seconds": round(time.monotonic() - began, 2), "loss": loss, **{
                name: round(float(getattr(terms, name).detach()), 4)
                for name in ("image", "point", "global_split", "blob_split", "false_positive")},
                "far_background": round(float(far.detach()), 4) if far is not None else 0.0})
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_state(state_path, step, model, optimizer, config)
        if config.val_every and step % config.val_every == 0 and step < config.steps and val_samples:
            metrics = evaluate_samples(model, det, val_samples, device, config.nms_radius_um, config.match_radius_um)
            bar.write(f"step {step}: " + _metrics_line(metrics))
    bar.close()
    finished = step >= config.steps
    if not finished:
        _save_state(state_path, step, model, optimizer, config)

    metrics = (
        evaluate_samples(model, det, val_samples, device, config.nms_radius_um, config.match_radius_um)
        if val_samples else {}
    )
    card = model_card(config, det, samples, metrics, step, finished, device, time.monotonic() - began, history)
    model_path = out / MODEL_NAME
    save_checkpoint(model_path, model, det, extra={"name": config.name, "steps": step}, half=config.half)
    (out / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (out / CARD_MD).write_text(card_markdown(card), encoding="utf-8")
    return TrainResult(model_path, out / CARD_MD, out / CARD_JSON, state_path, step, finished, metrics, card)


def _metrics_line(metrics: dict) -> str:
    parts = []
    for source, m in metrics.items():
        f1 = "/".join(f"{m['per_class'][k]['f1']:.3f}" for k in ("positive", "negative"))
        parts.append(f"{source} F1 pos/neg {f1} pct err {m['positive_pct_abs_error_mean']}")
    return "; ".join(parts)


def model_card(config, det, samples, metrics, steps_done, finished, device, seconds, history) -> dict:
    import torch

    sources = datasets.describe(samples)
    return {
        "name": config.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "architecture": {"arch": det.arch, "backbone": det.backbone, "num_classes": det.num_classes,
                         "class_names": list(det.class_names)},
        "working_mpp": det.mpp,
        "normalisation": {"mean": list(det.mean), "std": list(det.std), "input": "RGB scaled to [0, 1]"},
        "training": {"steps": steps_done, "initialised_from": config.init_from,
                     "source_weights": dict(zip(config.sources, config.source_weights or [1.0] * len(config.sources))),
                     "far_background": {"radius_um": config.background_radius_um, "weight": config.background_weight},
                     "point_radius_um": config.point_radius_um, "warmup_steps": config.warmup_steps,
                     "loss_weights": asdict(config.loss_weights),
                     "planned_steps": config.steps, "finished": finished,
                     "batch_size": config.batch_size, "crop": config.crop, "lr": config.lr,
                     "weight_decay": config.weight_decay, "seed": config.seed, "device": str(device),
                     "seconds": round(seconds, 1), "loss_history": history[-50:],
                     "augmentation": "random crop, flips, 90-degree rotations, HED stain jitter "
                                     f"(sigma {config.stain_sigma}, bias {config.stain_bias})"
                                     + (f", scale jitter ±{config.scale_jitter:g}" if config.scale_jitter else "")},
        "training_data": {"sources": sources, "synthetic": any(s["synthetic"] for s in sources)},
        "evaluation": {"nms_radius_um": config.nms_radius_um, "match_radius_um": config.match_radius_um,
                       "note": "held-out (val split) fields only"},
        "metrics": metrics,
    }


def card_markdown(card: dict) -> str:
    arch = card["architecture"]
    t = card["training"]
    lines = [
        f"# Model card: {card['name'] or 'unnamed detector'}",
        "",
        f"- Created: {card['created']} (torch {card['torch_version']}, trained on {t['device']})",
        f"- Architecture: {arch['arch']} / {arch['backbone']}, classes {', '.join(arch['class_names'])}",
        f"- Working resolution: {card['working_mpp']} µm/px (resample inputs to this before inference)",
        f"- Normalisation: mean {card['normalisation']['mean']}, std {card['normalisation']['std']} on RGB in [0, 1]",
        f"- Training: {t['steps']} steps" + ("" if t["finished"] else f" of {t['planned_steps']} planned (stopped early)")
        + f", batch {t['batch_size']}, crop {t['crop']} px, AdamW lr {t['lr']}, seed {t['seed']}, {t['seconds']} s",
        f"- Augmentation: {t['augmentation']}",
        f"- Loss: LCFCN point-supervised loss (analysis.loss)"
        + (f", point term over a {t['point_radius_um']} µm disc around each click" if t.get("point_radius_um") else "")
        + (f" + background beyond {t['far_background']['radius_um']} µm of every click "
           f"(weight {t['far_background']['weight']})" if t.get("far_background", {}).get("weight") else ""),
    ]
    if t.get("loss_weights"):
        lw = t["loss_weights"]
        lines.append("- Loss weights: " + ", ".join(f"{k} {v:g}" for k, v in lw.items()))
    if len(set((t.get("source_weights") or {}).values())) > 1:
        lines.append("- Source shares in each batch: " + ", ".join(f"{k} {v:g}" for k, v in t["source_weights"].items()))
    if t.get("initialised_from"):
        lines.append(f"- Initialised from: {t['initialised_from']} (fine-tuned)")
    lines += [
        "",
        "## Training data",
        "",
    ]
    if card["training_data"]["synthetic"]:
        lines += ["**Includes SYNTHETIC images** (analysis.synthetic): not tissue; metrics on them do not "
                  "predict performance on real slides.", ""]
    lines += ["| source | SYNTHETIC | fields (train/val/test) | points train (pos/neg) | licence |",
              "|---|---|---|---|---|"]
    for s in card["training_data"]["sources"]:
        fields_ = "/".join(str(s["fields"].get(k, 0)) for k in datasets.SPLITS)
        pts = s["points"].get("train", {"positive": 0, "negative": 0})
        lines.append(f"| {s['source']} | {'SYNTHETIC' if s['synthetic'] else 'real'} | {fields_} | "
                     f"{pts['positive']}/{pts['negative']} | {s['licence']} |")
    lines += ["", "## Metrics (held-out fields)", "",
              f"Matching radius {card['evaluation']['match_radius_um']} µm, NMS radius "
              f"{card['evaluation']['nms_radius_um']} µm. Per-class counts pooled over fields; "
              "positive-percentage error in percentage points, per field.", ""]
    if not card["metrics"]:
        lines.append("No held-out fields: nothing measured.")
    else:
        lines += ["| source | fields | detection F1 | positive F1 (P/R) | negative F1 (P/R) | pos. % error mean (max) |",
                  "|---|---|---|---|---|---|"]
        for source, m in card["metrics"].items():
            label = source + (" (SYNTHETIC)" if m["synthetic"] else "")

            def cls(k, m=m):
                c = m["per_class"][k]
                return f"{_fmt(c['f1'])} ({_fmt(c['precision'])}/{_fmt(c['recall'])})"

            lines.append(f"| {label} | {m['fields']} | {_fmt(m['detection']['f1'])} | {cls('positive')} | "
                         f"{cls('negative')} | {_fmt(m['positive_pct_abs_error_mean'], 2)} "
                         f"({_fmt(m['positive_pct_abs_error_max'], 2)}) |")
    return "\n".join(lines) + "\n"


def _fmt(value, digits=3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
