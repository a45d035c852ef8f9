"""Held-out validation of a training run and its model card (JSON and Markdown)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import datasets
from .nets import DetectorConfig

CARD_MD, CARD_JSON = "MODEL_CARD.md", "model_card.json"
CLASS_KEYS = {1: "positive", 2: "negative"}


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
                          ignore_xy=datasets.metric_ignore_xy(s))
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


def metrics_line(metrics: dict) -> str:
    parts = []
    for source, m in metrics.items():
        f1 = "/".join(f"{m['per_class'][k]['f1']:.3f}" for k in ("positive", "negative"))
        parts.append(f"{source} F1 pos/neg {f1} pct err {m['positive_pct_abs_error_mean']}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Lineage:
    """The fields the weights a run started from (--init-from) were trained on, through their whole chain: a
    promotion refuses held-out fields that any of them trained on (analysis.promotion.check_lineage).

    What the chain's weights learnt from stays with every descendant: `synthetic` when any model of the chain
    trained on SYNTHETIC images, and `licences`, the sources of every model of the chain with their licences
    (a model fine-tuned from one trained on non-commercial data is bound by that licence too)."""

    initialised_from: str | None = None
    models: tuple = ()  # the chain, parent first (card names, else paths)
    trained_fields: tuple = ()  # every field any of them trained on (datasets.Sample.name)
    unchecked: str = ""  # why what the chain trained on is unknown; "" when it is known
    synthetic: bool = False  # any model of the chain trained on SYNTHETIC images
    licences: tuple = ()  # {"model", "source", "synthetic", "licence"} of each source of each model of the chain

    def to_dict(self) -> dict:
        return {**asdict(self), "models": list(self.models), "trained_fields": list(self.trained_fields),
                "licences": [dict(entry) for entry in self.licences]}


def _inherited_licences(name: str, sources: list, grand: dict) -> tuple:
    own = [{"model": name, "source": str(s.get("source", "")), "synthetic": bool(s.get("synthetic")),
            "licence": str(s.get("licence", ""))} for s in sources]
    further = [dict(entry) for entry in grand.get("licences") or [] if isinstance(entry, dict)]
    return tuple(own + further)


def lineage_of(init_from, parent_card: dict | None) -> Lineage:
    """The Lineage of a run started from `init_from`, whose model card is `parent_card` (None: not found)."""
    if not init_from:
        return Lineage()
    init_from = str(init_from)
    if not isinstance(parent_card, dict) or not parent_card:
        return Lineage(init_from, (init_from,), (), f"no model card beside {init_from}")
    name = parent_card.get("name") or init_from
    data = parent_card.get("training_data") or {}
    sources = [s for s in data.get("sources") or [] if isinstance(s, dict)]
    own = {n for s in sources for n in s.get("train_fields") or []}
    unchecked = ""
    if any(s.get("fields", {}).get("train") and "train_fields" not in s for s in sources) or not sources:
        unchecked = f"the card of {name} does not list the fields it trained on"
    grand = data.get("lineage")
    if grand is None:  # a card from before lineage was recorded: it says whether it was fine-tuned, not from what
        grand = {"models": [], "trained_fields": [], "unchecked": ""}
        grandparent = (parent_card.get("training") or {}).get("initialised_from")
        if grandparent and not unchecked:
            unchecked = f"{name} was fine-tuned from {grandparent}, whose training fields its card does not list"
    unchecked = unchecked or (f"via {name}: {grand['unchecked']}" if grand.get("unchecked") else "")
    trained = tuple(sorted(own | set(grand.get("trained_fields", []))))
    # The parent's own flag covers its whole chain when its card has one (cards since lineage carried it).
    synthetic = bool(data.get("synthetic") or grand.get("synthetic") or any(s.get("synthetic") for s in sources))
    return Lineage(init_from, (name, *grand.get("models", [])), trained, unchecked, synthetic,
                   _inherited_licences(name, sources, grand))


def read_card_beside(path) -> dict | None:
    """The model card of a checkpoint: NAME.json beside a registered copy, else the run's model_card.json."""
    path = Path(path)
    for card in (path.with_suffix(".json"), path.parent / CARD_JSON):
        try:
            return json.loads(card.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None


def model_card(config, det, samples, metrics, steps_done, finished, device, seconds, history, resumes=()) -> dict:
    """The card of a run. `resumes`: each resume of the run, {"at_step", "changed": {key: [old, new]}}."""
    import torch

    sources = datasets.describe(samples)
    lineage = lineage_of(config.init_from, config.init_from and read_card_beside(config.init_from))
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
                     "seconds": round(seconds, 1), "loss_history": history[-50:], "resumes": list(resumes),
                     "augmentation": "random crop, flips, 90-degree rotations, HED stain jitter "
                                     f"(sigma {config.stain_sigma}, bias {config.stain_bias})"
                                     + (f", scale jitter ±{config.scale_jitter:g}" if config.scale_jitter else "")},
        # synthetic: SYNTHETIC images anywhere in what the weights learnt from, its own sources or its chain's.
        "training_data": {"sources": sources, "synthetic": any(s["synthetic"] for s in sources) or lineage.synthetic,
                          "lineage": lineage.to_dict()},
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
        + f", batch {t['batch_size']}, crop {t['crop']} px, AdamW lr {t['lr']}, seed {t['seed']}, {t['seconds']} s"
        + (" (this call's)" if t.get("resumes") else ""),
        f"- Augmentation: {t['augmentation']}",
        f"- Loss: LCFCN point-supervised loss (analysis.loss)"
        + (f", point term over a {t['point_radius_um']} µm disc around each click" if t.get("point_radius_um") else "")
        + (f" + background beyond {t['far_background']['radius_um']} µm of every click "
           f"(weight {t['far_background']['weight']})" if t.get("far_background", {}).get("weight") else ""),
    ]
    if t.get("loss_weights"):
        lw = t["loss_weights"]
        lines.append("- Loss weights: " + ", ".join(f"{k} {v:g}" for k, v in lw.items()))
    if t.get("resumes"):
        lines.append("- Resumed: " + "; ".join(
            f"at step {r['at_step']}" + (" (" + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in r["changed"].items()) + ")"
                                         if r.get("changed") else "")
            for r in t["resumes"]))
    if len(set((t.get("source_weights") or {}).values())) > 1:
        lines.append("- Source shares in each batch: " + ", ".join(f"{k} {v:g}" for k, v in t["source_weights"].items()))
    if t.get("initialised_from"):
        lines.append(f"- Initialised from: {t['initialised_from']} (fine-tuned)")
        lineage = card["training_data"].get("lineage") or {}
        lines.append("- Lineage: " + (f"unknown ({lineage['unchecked']}): it cannot be promoted"
                                      if lineage.get("unchecked") else
                                      f"{' <- '.join(lineage.get('models', []))}, "
                                      f"{len(lineage.get('trained_fields', []))} training field(s) recorded"))
    lines += [
        "",
        "## Training data",
        "",
    ]
    lineage = card["training_data"].get("lineage") or {}
    if card["training_data"]["synthetic"]:
        own = any(s["synthetic"] for s in card["training_data"]["sources"])
        via = "" if own else (" through the weights it started from "
                              f"({' <- '.join(lineage.get('models', [])) or t.get('initialised_from')})")
        lines += [f"**Includes SYNTHETIC images**{via} (analysis.synthetic): not tissue; metrics on them do not "
                  "predict performance on real slides.", ""]
    lines += ["| source | SYNTHETIC | fields (train/val/test) | points train (pos/neg) | licence |",
              "|---|---|---|---|---|"]
    for s in card["training_data"]["sources"]:
        fields_ = "/".join(str(s["fields"].get(k, 0)) for k in datasets.SPLITS)
        pts = s["points"].get("train", {"positive": 0, "negative": 0})
        lines.append(f"| {s['source']} | {'SYNTHETIC' if s['synthetic'] else 'real'} | {fields_} | "
                     f"{pts['positive']}/{pts['negative']} | {s['licence']} |")
    if lineage.get("licences"):
        lines += ["", "Inherited through the starting weights (their terms bind this model too):", "",
                  "| inherited from | source | SYNTHETIC | licence |", "|---|---|---|---|"]
        for entry in lineage["licences"]:
            lines.append(f"| {entry['model']} | {entry['source']} | {'SYNTHETIC' if entry['synthetic'] else 'real'} | "
                         f"{entry['licence']} |")
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
            if datasets.val_is_other_half(source):
                label += " (right halves of its training fields: not held out)"

            def cls(k, m=m):
                c = m["per_class"][k]
                return f"{_fmt(c['f1'])} ({_fmt(c['precision'])}/{_fmt(c['recall'])})"

            lines.append(f"| {label} | {m['fields']} | {_fmt(m['detection']['f1'])} | {cls('positive')} | "
                         f"{cls('negative')} | {_fmt(m['positive_pct_abs_error_mean'], 2)} "
                         f"({_fmt(m['positive_pct_abs_error_max'], 2)}) |")
    return "\n".join(lines) + "\n"


def _fmt(value, digits=3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
