"""Resumable training state (last.pt) and the weights a run starts from (fine-tuning).

A resume continues one run only: everything it was configured with, and the data it trained on, must be
what the checkpoint recorded (check_resume). Only the keys of RESUME_MAY_CHANGE may differ; each resume,
and what it changed among those, is kept in the checkpoint and goes on the model card.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .atomic import write_atomically
from .training_config import TrainConfig, TrainingError, config_dict

CHECKPOINT_NAME = "last.pt"
TRAIN_STATE_FORMAT = "pdl1-detector-train-state"
DATA_FINGERPRINT_VERSION = 1
# What a resume may change: how long and where the run goes on, how it reports, how it stores and measures
# the final model (the final store and evaluation happen entirely in the last call, as its card says).
# Every other config key (data, architecture, optimiser, loss, augmentation, name, starting weights) must be
# as the checkpoint recorded it, or the card of the finished model would describe a run that never took place.
# `steps` may change, to extend or shorten a run: the schedule then follows the new total (so only an unchanged
# config reproduces the uninterrupted run exactly), and the card's resume history records the change.
RESUME_MAY_CHANGE = frozenset({
    "out_dir", "steps", "stop_at_step", "max_minutes", "val_every", "progress", "device", "resume",
    "checkpoint_every", "half", "nms_radius_um", "match_radius_um",
})
# How one call runs, reports and slices its work: not worth a line in the resume history.
_UNRECORDED = frozenset({"out_dir", "progress", "resume", "stop_at_step", "max_minutes", "val_every",
                         "checkpoint_every"})


def weights_from(path) -> dict:
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict) and checkpoint.get("format") == TRAIN_STATE_FORMAT:
        return checkpoint["model"]
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        return {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    raise TrainingError(f"init_from: {path} is neither a model nor a training checkpoint")


# ---------------------------------------------------------------------------- data fingerprint


def _sample_digest(sample) -> str:
    """sha256 of what training reads of a sample: pixels, points, labels, ignore and uncertain points, µm/px."""
    h = hashlib.sha256()
    for arr in (sample.rgb, sample.xy, sample.labels, sample.ignore_xy, sample.uncertain_xy):
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    h.update(repr(float(sample.mpp)).encode())
    return h.hexdigest()


def data_fingerprint(samples) -> dict:
    """{"version", "fields": {source: {field name: [split, sha256]}}} of the loaded samples (after resampling)."""
    fields: dict[str, dict[str, list]] = {}
    for s in samples:
        per_source = fields.setdefault(s.source, {})
        name, n = s.name, 1
        while name in per_source:  # a source with two fields of one name: both count
            n += 1
            name = f"{s.name}#{n}"
        per_source[name] = [s.split, _sample_digest(s)]
    return {"version": DATA_FINGERPRINT_VERSION, "fields": fields}


def data_differences(before: dict, now: dict) -> list[str]:
    """What changed between two data fingerprints, one line per field (empty: the same data)."""
    lines = []
    old, new = before.get("fields", {}), now.get("fields", {})
    for source in sorted(set(old) | set(new)):
        a, b = old.get(source, {}), new.get(source, {})
        for name in sorted(set(a) | set(b)):
            if name not in b:
                lines.append(f"{source} field {name} ({a[name][0]}): gone")
            elif name not in a:
                lines.append(f"{source} field {name} ({b[name][0]}): new")
            elif a[name][0] != b[name][0]:
                lines.append(f"{source} field {name}: split {a[name][0]} -> {b[name][0]}")
            elif a[name][1] != b[name][1]:
                lines.append(f"{source} field {name} ({a[name][0]}): image or points changed")
    return lines


# ---------------------------------------------------------------------------- save and restore


def save_state(path: Path, step: int, model, optimizer, config: TrainConfig, data: dict,
               resumes: list | None = None) -> None:
    """Write the training state atomically (a run killed while saving keeps the previous checkpoint), through
    a temporary file of its own: a superseded worker and its successor never write into one temporary file."""
    import torch

    state = {
        "format": TRAIN_STATE_FORMAT,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "config": json.dumps(config_dict(config)),
        "data": json.dumps(data),
        "resumes": json.dumps(list(resumes or [])),
    }
    write_atomically(path, lambda tmp: torch.save(state, tmp))


def _default_config() -> dict:
    return config_dict(TrainConfig(out_dir=""))


def check_resume(saved_config: dict, config: TrainConfig, saved_data: dict | None, data: dict) -> dict:
    """TrainingError naming every difference that makes the run another one; else {key: [old, new]} of the
    keys of RESUME_MAY_CHANGE that changed (for the resume history)."""
    now = config_dict(config)  # lists where the config holds tuples, as saved
    defaults = _default_config()
    changed, refused = {}, []
    for key, value in now.items():
        # A key missing from an older checkpoint had its default then (it did not exist yet).
        old = saved_config.get(key, defaults.get(key))
        if old == value:
            continue
        if key in RESUME_MAY_CHANGE:
            if key not in _UNRECORDED:
                changed[key] = [old, value]
        else:
            refused.append(f"{key}={old!r}, now {value!r}")
    if refused:
        raise TrainingError("cannot resume: checkpoint has " + "; ".join(refused)
                            + ". A resumed run must be configured as it began (only "
                            + ", ".join(sorted(RESUME_MAY_CHANGE - {"out_dir", "progress", "resume"}))
                            + " may change); start a new run in another folder")
    if saved_data is None:
        raise TrainingError("cannot resume: the checkpoint predates data fingerprints, so whether the fields and "
                            "their splits are still those it trained on cannot be checked; start a new run in "
                            "another folder")
    diff = data_differences(saved_data, data)
    if diff:
        shown = diff[:12] + ([f"... and {len(diff) - 12} more"] if len(diff) > 12 else [])
        raise TrainingError("cannot resume: the training data changed since the checkpoint (" + "; ".join(shown)
                            + "). Fields trained on before would be carded as held out, or the card would list "
                            "data the run did not see; restore the data as it was, or start a new run in another "
                            "folder")
    return changed


def restore_state(path: Path, config: TrainConfig, model, optimizer, data: dict) -> tuple[int, list]:
    """Load a training state into `model` and `optimizer` (and torch's RNG) after check_resume: (the step it
    reached, the resume history including this resume)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    saved_data = json.loads(state["data"]) if "data" in state else None
    changed = check_resume(json.loads(state["config"]), config, saved_data, data)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    step = int(state["step"])
    resumes = json.loads(state.get("resumes", "[]")) + [{"at_step": step, "changed": changed}]
    return step, resumes
