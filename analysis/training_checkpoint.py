"""Resumable training state (last.pt) and the weights a run starts from (fine-tuning)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .training_config import TrainConfig, TrainingError, config_dict

CHECKPOINT_NAME = "last.pt"
TRAIN_STATE_FORMAT = "pdl1-detector-train-state"
# Resuming with another value of one of these would not continue the same run. The data keys too: the
# card of the finished model states the sources and the starting weights of the *resumed* call, so a run
# begun on other data (SYNTHETIC, say) and resumed on real fields would be carded as real-data trained.
RESUME_KEYS = ("arch", "backbone", "mpp", "seed", "batch_size", "crop", "sources", "source_weights", "init_from",
               "synthetic_train", "synthetic_val", "synthetic_size")


def weights_from(path) -> dict:
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict) and checkpoint.get("format") == TRAIN_STATE_FORMAT:
        return checkpoint["model"]
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        return {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    raise TrainingError(f"init_from: {path} is neither a model nor a training checkpoint")


def save_state(path: Path, step: int, model, optimizer, config: TrainConfig) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "format": TRAIN_STATE_FORMAT,
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "config": json.dumps(config_dict(config)),
        },
        tmp,
    )
    os.replace(tmp, path)  # a run killed while saving keeps the previous checkpoint


def restore_state(path: Path, config: TrainConfig, model, optimizer) -> int:
    """Load a training state into `model` and `optimizer` (and torch's RNG); the step it reached."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = json.loads(state["config"])
    # `steps` may change, to extend or shorten a run: the schedule then follows the new
    # total, so only an unchanged config reproduces the uninterrupted run exactly.
    now = config_dict(config)  # lists where the config holds tuples, as saved
    for key in RESUME_KEYS:
        if key in saved and saved[key] != now[key]:  # a key missing from an older checkpoint: not checked
            raise TrainingError(f"cannot resume: checkpoint has {key}={saved[key]!r}, now {now[key]!r}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])
