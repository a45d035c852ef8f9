"""Training loop for the point-supervised detector (no Django; the command is a thin wrapper).

train(TrainConfig) builds the detector, draws batches of random crops with
augmentation (training_batches; the nuclei annotators disagreed on are ignore discs
there, never background), optimises the LCFCN loss with AdamW under a
warm-up + cosine learning rate (training_config), writes resumable checkpoints
(training_checkpoint), validates on held-out fields with postprocess.predict +
matching.evaluate, and writes the model and its model card (training_card).

Reproducibility: the batch and the dropout of step s are drawn from
generators seeded with (seed, s), not from a stream carried across steps, so
a resumed run draws exactly what an uninterrupted one would; the checkpoint
still stores the torch RNG state, optimizer state and step.  On CPU two runs
with the same seed give the same weights.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import datasets
from .loss import point_supervised_loss
from .postprocess import NonFiniteOutputs
from .training_batches import draw_batch, far_background_term, not_tumour_radius_px
from .training_card import CARD_JSON, CARD_MD, card_markdown, evaluate_samples, metrics_line, model_card
from .atomic import write_atomically, write_text_atomically
from .training_checkpoint import CHECKPOINT_NAME, data_fingerprint, restore_state, save_state, weights_from
from .training_config import TrainConfig, TrainingError, learning_rate, training_device, validate_config

# The loop's interface: train() takes a TrainConfig and raises TrainingError.
__all__ = ["MODEL_NAME", "StepReport", "TrainConfig", "TrainResult", "TrainingCancelled", "TrainingError", "train"]

MODEL_NAME = "model.pt"


class TrainingCancelled(Exception):
    """The monitor asked the loop to stop between two steps: a resumable checkpoint is written,
    no model file and no card (a partial model is never offered as a result)."""

    def __init__(self, step: int):
        super().__init__(f"training cancelled after step {step}")
        self.step = step


@dataclass(frozen=True)
class StepReport:
    """What the loop tells its monitor before the first step and after every step."""

    step: int  # steps done in total (a resumed run starts at its checkpoint's)
    steps: int  # planned total
    first_step: int  # where this process started (0, or the resumed checkpoint's step)
    seconds: float  # since this process started stepping
    loss: float | None  # of the step just done; None before the first

    @property
    def eta_seconds(self) -> float | None:
        """Remaining steps at this process's mean pace so far (the final held-out evaluation not included)."""
        done = self.step - self.first_step
        return None if done <= 0 else self.seconds / done * max(self.steps - self.step, 0)


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


def _evaluate(model, det, val_samples, device, config: TrainConfig, step: int) -> dict:
    """evaluate_samples, with a diverged network (NaN or infinite outputs, which postprocess refuses to read)
    reported as what it is: a training failure the learning rate usually explains, not a detection error."""
    try:
        return evaluate_samples(model, det, val_samples, device, config.nms_radius_um, config.match_radius_um)
    except NonFiniteOutputs:
        raise TrainingError(f"the model diverged: its outputs are NaN or infinite at step {step} (lower the learning "
                            f"rate, now {config.lr:g}, or add warmup steps, and train again; the weights of this run "
                            "are not usable)") from None


def train(config: TrainConfig, monitor=None) -> TrainResult:
    """Run (or resume) the training `config` describes. `monitor`, if given, is called with a
    StepReport before the first step and after each one; when it returns False the loop stops
    there and raises TrainingCancelled (cooperative cancel: the step in progress finishes)."""
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
    # What the run trains and is measured on, field by field: a resume on other fields, splits, images or points
    # is refused (training_checkpoint.check_resume), or the card would call held out a field trained on before.
    data = data_fingerprint(samples)
    out.mkdir(parents=True, exist_ok=True)  # only now: a bad source leaves nothing behind

    det = config.detector_config()
    torch.manual_seed(config.seed)  # initial weights
    model = build_detector_from_config(det).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start, resumes = 0, []
    if config.init_from and not (config.resume and state_path.exists()):
        model.load_state_dict(weights_from(config.init_from))
    if config.resume and state_path.exists():
        start, resumes = restore_state(state_path, config, model, optimizer, data)

    on_cuda = device.type == "cuda"
    # channels_last: a training step (128 px crops, 2 CPU cores) measured faster in it than in
    # NCHW (oneDNN), and CUDA tensor cores want it too; the same ops run every time, so CPU
    # training stays deterministic (the resume test checks bit-identical weights).
    model = model.to(memory_format=torch.channels_last)
    began = time.monotonic()
    history = []
    step = start
    bar = tqdm(total=config.steps, initial=start, disable=not config.progress, desc="train", dynamic_ncols=True)
    loss = None
    while step < config.steps:
        if monitor is not None and monitor(StepReport(step, config.steps, start, time.monotonic() - began, loss)) is False:
            bar.close()
            if step > start:  # what was done stays resumable; nothing else is written
                save_state(state_path, step, model, optimizer, config, data, resumes)
            raise TrainingCancelled(step)
        if config.stop_at_step is not None and step >= config.stop_at_step:
            break
        if config.max_minutes is not None and time.monotonic() - began > 60 * config.max_minutes:
            break
        rng = np.random.default_rng([config.seed, step])
        torch.manual_seed(config.seed * 1_000_003 + step)  # dropout of this step
        # ignore: discs over the nuclei annotators disagreed on, and over clicked nuclei whose click lies
        # just outside the crop; no term may push them to background.
        x, points, not_tumour, ignore, not_tumour_disc = draw_batch(train_sets, config, rng)
        x, points = x.to(device).contiguous(memory_format=torch.channels_last), points.to(device)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        model.train()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=on_cuda):
            logits = model(x)
        terms = point_supervised_loss(logits, points, x, config.loss_weights, ignore=torch.from_numpy(ignore),
                                      point_radius_px=config.point_radius_um / config.mpp)
        total = terms.total
        far = None
        if config.background_weight:
            far = far_background_term(logits, points, config.background_radius_um / config.mpp,
                                      not_tumour, not_tumour_radius_px(config), ignore=ignore,
                                      not_tumour_disc=not_tumour_disc)
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
            save_state(state_path, step, model, optimizer, config, data, resumes)
        if config.val_every and step % config.val_every == 0 and step < config.steps and val_samples:
            metrics = _evaluate(model, det, val_samples, device, config, step)
            bar.write(f"step {step}: " + metrics_line(metrics))
    bar.close()
    if monitor is not None:
        monitor(StepReport(step, config.steps, start, time.monotonic() - began, loss))
    finished = step >= config.steps
    if not finished:
        save_state(state_path, step, model, optimizer, config, data, resumes)

    model_path = out / MODEL_NAME
    for stale in (out / CARD_JSON, out / CARD_MD):  # an earlier run's card never sits beside these weights
        stale.unlink(missing_ok=True)
    # Written whole or not at all (a temporary file, then os.replace): a run killed while saving keeps the
    # previous model.pt intact, never a part of one.
    write_atomically(model_path, lambda tmp: save_checkpoint(tmp, model, det, extra={"name": config.name, "steps": step},
                                                             half=config.half))
    # The card's numbers are those of the weights stored: with --half, of the fp16 weights read back.
    stored = model
    if config.half and val_samples:
        from .nets import load_checkpoint

        stored = load_checkpoint(model_path, map_location=device)[0]
    metrics = (
        _evaluate(stored, det, val_samples, device, config, step) if val_samples else {}
    )
    card = model_card(config, det, samples, metrics, step, finished, device, time.monotonic() - began, history,
                      resumes)
    write_text_atomically(out / CARD_JSON, json.dumps(card, indent=2) + "\n")
    write_text_atomically(out / CARD_MD, card_markdown(card))
    return TrainResult(model_path, out / CARD_MD, out / CARD_JSON, state_path, step, finished, metrics, card)
