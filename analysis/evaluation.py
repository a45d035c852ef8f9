"""Evaluate detectors against point ground truth and write a comparison table.

Matching is one-to-one (Hungarian, analysis.matching) within a radius in µm.
Counts are pooled over all fields of a data set (so precision/recall/F1 are
micro-averages); count and positive-percentage errors are per field, then
averaged, because that is the error a pathologist sees on one field.
Any SYNTHETIC data is named so in every row and output file.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .matching import NEGATIVE, POSITIVE, evaluate

SYNTHETIC_SEED_BASE = 9_500_000  # datasets' "test" seeds: never used for training or validation
DATA_KINDS = ("synthetic", "deepliif", "deepliif:heldout", "shidc", "shidc:val", "bcdata", "bcdata:val",
              "folder:PATH")


class EvaluationDataMissing(LookupError):
    """An evaluation data set that is not available here; the message says where it was looked for."""


@dataclass
class EvalField:
    name: str
    rgb: np.ndarray
    xy: np.ndarray  # (N, 2) truth, px
    labels: np.ndarray  # (N,) 1 positive, 2 negative
    mpp: float
    ignore_xy: np.ndarray | None = None  # labelled non-tumour nuclei (lymphocytes): an ignore zone


@dataclass
class EvalData:
    name: str  # e.g. "SYNTHETIC (6 fields, seeds 9500000-9500005)"
    fields: list[EvalField]
    synthetic: bool
    compartment: str = "membrane"  # for the classic detector: Ki67 (DeepLIIF) is nuclear


@dataclass
class DetectorScore:
    detector: str
    data: str
    synthetic: bool
    fields: int
    n_truth: int
    n_pred: int
    precision: dict  # {"detection", "positive", "negative"}
    recall: dict
    f1: dict
    class_accuracy: float  # among matched pairs, fraction with the right class
    false_discovery_rate: float  # unmatched detections / detections
    false_positive_rate: float  # matched truth-negatives called positive / matched truth-negatives
    count_mae: float  # mean over fields of |n_pred - n_truth|
    positive_pct_abs_error: float  # mean over fields, percentage points
    seconds: float
    note: str = ""
    positive_pct_abs_error_max: float = float("nan")  # worst field, percentage points
    # Per field: name, true and stated positive %, counts (for per-field tables and intervals).
    per_field: list = field(default_factory=list)
    # Fields with labelled tumour cells where the detector found none: scored at their worst error.
    fields_without_cells: int = 0

    def to_dict(self) -> dict:
        return _clean(asdict(self))


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _ratio(a, b) -> float:
    return a / b if b else float("nan")


def score_detector(detector, data: EvalData, radius_um: float = 4.0, note: str = "") -> DetectorScore:
    """Run `detector` on every field of `data` and pool the matches."""
    tp = {"detection": 0, POSITIVE: 0, NEGATIVE: 0}
    n_pred = {"detection": 0, POSITIVE: 0, NEGATIVE: 0}
    n_truth = {"detection": 0, POSITIVE: 0, NEGATIVE: 0}
    same_class = matched = neg_matched = neg_called_pos = 0
    count_err, pct_err, per_field = [], [], []
    fields_without_cells = 0
    start = time.perf_counter()
    for f in data.fields:
        found = detector.detect(f.rgb, f.mpp)
        ev = evaluate(found.xy, found.labels, f.xy, f.labels, f.mpp, radius_um, ignore_xy=f.ignore_xy)
        pl, tl = ev.matched_pred_labels, ev.matched_truth_labels
        tp["detection"] += ev.detection.tp
        n_pred["detection"] += ev.detection.n_pred
        n_truth["detection"] += ev.detection.n_truth
        for c in (POSITIVE, NEGATIVE):
            tp[c] += ev.per_class[c].tp
            n_pred[c] += ev.per_class[c].n_pred
            n_truth[c] += ev.per_class[c].n_truth
        matched += len(pl)
        same_class += int((pl == tl).sum())
        neg_matched += int((tl == NEGATIVE).sum())
        neg_called_pos += int(((tl == NEGATIVE) & (pl == POSITIVE)).sum())
        count_err.append(abs(ev.detection.n_pred - ev.detection.n_truth))
        if not math.isnan(ev.positive_pct_abs_error):
            pct_err.append(ev.positive_pct_abs_error)
        elif math.isfinite(ev.positive_pct_truth):
            # Tumour cells labelled, none found: no percentage is stated, the field's worst error (it
            # was left out of the mean and max, so a detector that found nothing scored 0).
            pct_err.append(max(ev.positive_pct_truth, 100.0 - ev.positive_pct_truth))
            fields_without_cells += 1
        per_field.append({"name": f.name, "n_truth": ev.detection.n_truth, "n_pred": ev.detection.n_pred,
                          "tp": ev.detection.tp, "positive_pct_truth": _finite(ev.positive_pct_truth),
                          "positive_pct_pred": _finite(ev.positive_pct_pred)})
    keys = {"detection": "detection", "positive": POSITIVE, "negative": NEGATIVE}
    precision = {k: _ratio(tp[c], n_pred[c]) for k, c in keys.items()}
    recall = {k: _ratio(tp[c], n_truth[c]) for k, c in keys.items()}
    # F1 = 2TP / (2TP + FP + FN), i.e. 2TP / (n_pred + n_truth): 0, not NaN, when nothing matches.
    f1 = {k: _ratio(2 * tp[c], n_pred[c] + n_truth[c]) for k, c in keys.items()}
    return DetectorScore(
        detector=getattr(detector, "name", str(detector)), data=data.name, synthetic=data.synthetic,
        fields=len(data.fields), n_truth=n_truth["detection"], n_pred=n_pred["detection"],
        precision=precision, recall=recall, f1=f1,
        class_accuracy=_ratio(same_class, matched),
        false_discovery_rate=_ratio(n_pred["detection"] - tp["detection"], n_pred["detection"]),
        false_positive_rate=_ratio(neg_called_pos, neg_matched),
        count_mae=float(np.mean(count_err)) if count_err else float("nan"),
        positive_pct_abs_error=float(np.mean(pct_err)) if pct_err else float("nan"),
        seconds=time.perf_counter() - start, note=note,
        positive_pct_abs_error_max=float(np.max(pct_err)) if pct_err else float("nan"), per_field=per_field,
        fields_without_cells=fields_without_cells,
    )


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


def _eval_fields(samples) -> list[EvalField]:
    """Evaluation fields from analysis.datasets samples (truth points in image pixels)."""
    from .datasets import metric_ignore_xy

    return [EvalField(s.name, s.rgb, s.xy, s.labels, s.mpp, metric_ignore_xy(s)) for s in samples]


def synthetic_data(n: int = 6, size: int = 256, mpp: float = 0.5) -> EvalData:
    """Held-out SYNTHETIC fields (the datasets "test" seeds, distinct from training and validation)."""
    from .datasets import synthetic_samples

    samples = synthetic_samples(n, "test", mpp=mpp, size=size)
    fields = _eval_fields(samples)
    name = f"SYNTHETIC ({n} fields {size}x{size} px at {mpp:g} µm/px, seeds {SYNTHETIC_SEED_BASE}-{SYNTHETIC_SEED_BASE + n - 1})"
    return EvalData(name, fields, synthetic=True)


def deepliif_data(root=None, heldout: bool = False) -> EvalData:
    """DeepLIIF Ki67 fields: IHC panel 0, points from the mask panel 5 (red positive, blue negative).

    heldout=True keeps only the right half of each field: the "val" split of
    datasets.deepliif_samples, which `train_detector --source deepliif` never
    trains on (it trains on the left halves): pixels it has not seen, but the
    other half of the same two fields (same slide, stain and scanner), so not a
    held-out source; promotion marks such rows "not held out".
    """
    from .datasets import DEEPLIIF_DIR, DEEPLIIF_MPP, DatasetError, deepliif_samples
    from .matching import mask_to_points

    root = Path(root or DEEPLIIF_DIR)
    files = sorted(root.glob("*.png"))
    if not files:
        raise EvaluationDataMissing(f"DeepLIIF data not found: no PNG fields in {root}")
    if heldout:
        try:
            halves = [s for s in deepliif_samples(root) if s.split == "val"]
        except DatasetError as exc:
            raise EvaluationDataMissing(str(exc)) from exc
        fields = _eval_fields(halves)
        names = ", ".join(f.name for f in fields)
        return EvalData(f"DeepLIIF Ki67 held-out right halves ({names}; real tissue, Ki67 not PD-L1)", fields,
                        synthetic=False, compartment="nucleus")
    from PIL import Image

    fields = []
    for path in files:
        strip = np.asarray(Image.open(path).convert("RGB"))
        panel = strip.shape[0]
        if strip.shape[1] != 6 * panel:
            raise EvaluationDataMissing(f"{path.name} is not a DeepLIIF strip of 6 square panels")
        xy, labels = mask_to_points(strip[:, 5 * panel:])
        fields.append(EvalField(path.stem, np.ascontiguousarray(strip[:, :panel]), xy, labels, DEEPLIIF_MPP))
    names = ", ".join(f.name for f in fields)
    return EvalData(f"DeepLIIF Ki67 ({names}; real tissue, Ki67 not PD-L1)", fields, synthetic=False,
                    compartment="nucleus")


def folder_data(path) -> EvalData:
    """An exported dataset folder (analysis.datasets format); its "test" split when it has one."""
    from .datasets import folder_samples

    samples = folder_samples(path)
    test = [s for s in samples if s.split == "test"] or samples
    synthetic = any(s.synthetic for s in test)
    fields = _eval_fields(test)
    label = f"{'SYNTHETIC ' if synthetic else ''}folder {path} ({len(fields)} fields)"
    return EvalData(label, fields, synthetic=synthetic)


def ihc_train_data(kind: str, val_only: bool = False) -> EvalData:
    """A real ihc_train source (SHIDC-B-Ki-67 or BCData): every field, or only its validation images.

    Every field is what a leave-one-source-out evaluation scores (the model
    never trained on that source); ``val_only`` is the within-source check.
    Lymphocyte points become each field's ignore zone.
    """
    from .datasets import IHC_TRAIN, DatasetError, ihc_train_samples

    try:
        samples = ihc_train_samples(kind)
    except DatasetError as exc:
        raise EvaluationDataMissing(str(exc)) from exc
    if val_only:
        samples = [s for s in samples if s.split == "val"]
    folder, mpp, _ = IHC_TRAIN[kind]
    part = "validation images" if val_only else "all fields"
    name = f"{kind} Ki67 ({part}, {len(samples)} fields at ~{mpp:g} µm/px; real tissue, Ki67 not PD-L1)"
    return EvalData(name, _eval_fields(samples), synthetic=False, compartment="nucleus")


def load_data(spec: str, **kwargs) -> EvalData:
    from .datasets import IHC_TRAIN

    kind, _, arg = spec.partition(":")
    if kind in IHC_TRAIN and arg in ("", "val"):
        return ihc_train_data(kind, val_only=arg == "val")
    if kind == "synthetic":
        return synthetic_data(**kwargs)
    if kind == "deepliif" and not arg:
        return deepliif_data()
    if kind == "deepliif" and arg == "heldout":
        return deepliif_data(heldout=True)
    if kind == "folder" and arg:
        return folder_data(arg)
    raise ValueError(f"unknown data {spec!r}: use {', '.join(DATA_KINDS)}")


# ----------------------------------------------------------------------------
# Table
# ----------------------------------------------------------------------------


def _fmt(value, pct=False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * value:.1f}%" if pct else f"{value:.3f}" if isinstance(value, float) else str(value)


def _pp(mean: float, worst: float) -> str:
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.1f} ({worst:.1f})" if math.isfinite(worst) else f"{mean:.1f}"


def markdown_table(scores: list[DetectorScore]) -> str:
    head = ("| detector | data | fields | truth | detected | F1 all | F1 pos | F1 neg | class acc. | "
            "FDR | FP rate | count MAE | pos-% error mean (max), pp | s | note |")
    rows = [head, "|" + "---|" * 15]
    for s in scores:
        rows.append("| " + " | ".join([
            s.detector, s.data, str(s.fields), str(s.n_truth), str(s.n_pred),
            _fmt(s.f1["detection"]), _fmt(s.f1["positive"]), _fmt(s.f1["negative"]),
            _fmt(s.class_accuracy), _fmt(s.false_discovery_rate), _fmt(s.false_positive_rate),
            f"{s.count_mae:.1f}", _pp(s.positive_pct_abs_error, s.positive_pct_abs_error_max),
            f"{s.seconds:.1f}", s.note or "",
        ]) + " |")
    return "\n".join(rows) + "\n"


LEGEND = (
    "F1 = 2TP / (2TP + FP + FN), pooled over fields; per class a match counts only when both classes agree. "
    "class acc. = right class among matched pairs. FDR = unmatched detections / detections. "
    "FP rate = matched truth-negative cells called positive / matched truth-negatives. "
    "count MAE = mean over fields of |detected - true|. pos-% error = mean (and worst) over fields of "
    "|predicted - true positive percentage| in percentage points. Detections on labelled lymphocytes that match "
    "no tumour cell are left out (an ignore zone). SYNTHETIC rows are generated images, not tissue."
)


def write_table(scores: list[DetectorScore], out_base, title: str, context: dict | None = None) -> tuple[Path, Path]:
    """Write out_base.md and out_base.json; returns both paths."""
    out_base = Path(out_base)
    out_base.parent.mkdir(parents=True, exist_ok=True)
    context = dict(context or {})
    md = [f"# {title}", ""]
    md += [f"- {k}: {v}" for k, v in context.items()]
    md += ["", markdown_table(scores), LEGEND, ""]
    md_path, json_path = out_base.with_suffix(".md"), out_base.with_suffix(".json")
    md_path.write_text("\n".join(md), encoding="utf-8")
    json_path.write_text(json.dumps({"title": title, **context, "legend": LEGEND,
                                     "rows": [s.to_dict() for s in scores]}, indent=2, ensure_ascii=False),
                         encoding="utf-8")
    return md_path, json_path


def machine_description() -> str:
    import os
    import platform

    cpus = os.cpu_count()
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        gpu = "no torch"
    return f"{platform.processor() or platform.machine()}, {cpus}-core CPU, {gpu}"
