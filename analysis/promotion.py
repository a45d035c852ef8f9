"""Promotion review: a research model is released for clinical use only after a pathologist or
admin has seen it scored beside the current default detector on the same held-out fields.

The metrics in a model card and a default's own numbers come from different data and code paths,
so they are never compared: at review time both detectors are run, through the same
analysis.evaluation.score_detector, on the candidate's recorded held-out split (the "val" fields
of its training sources, as its card counted them): other fields of the sources it trained on, not
sources it never saw (no leave-one-source-out). Each source is scored on its own as well as pooled, so
the largest source does not decide alone. A model without held-out fields, or whose split can no
longer be read as recorded, cannot be promoted; nor can one with empty metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from .choices import CLASSIC_DETECTOR, Marker, ModelStatus
from .models import ModelEvaluation, ModelPromotion, ModelVersion

# The compartment the classic baseline reads on a source's fields: the nucleus on a nuclear-marker (Ki-67)
# source (analysis.datasets.source_marker), as a Ki-67 job runs it, else the membrane (PD-L1). Chosen per
# source: the membrane setting on Ki-67 fields weakens the default and flatters the candidate, and one
# choice for the whole held-out set got it wrong on mixed sets (SYNTHETIC + DeepLIIF: membrane on DeepLIIF).
BASELINE_MARKER = Marker.PDL1
BASELINE_COMPARTMENT = "membrane"


def source_compartment(spec: str, recorded: str | None = None) -> str:
    """The compartment classic reads on the source's fields; `recorded`: the marker the candidate's card
    recorded for it. analysis.datasets.UnknownMarker (a ValueError) for a folder whose manifest records no
    marker: the compartment is not guessed."""
    from .datasets import is_nuclear_marker_source

    return "nucleus" if is_nuclear_marker_source(spec, recorded) else BASELINE_COMPARTMENT


def evaluation_marker(candidate: ModelVersion) -> str:
    """The marker the candidate's held-out fields are stained for (ModelVersion.held_out_marker), so the default
    it is compared with and may replace: a model measured on one marker is never made the default of the other
    (ModelVersion.check_activation). PromotionError when it cannot be told."""
    from .datasets import UnknownMarker

    try:
        return candidate.held_out_marker()
    except UnknownMarker as exc:
        raise PromotionError(f"{exc}: {candidate.name} cannot be compared with a default or promoted.") from None


class PromotionError(ValueError):
    """A review step refused; the message says why and what to do."""


@dataclass(frozen=True)
class Baseline:
    """The detector clinical jobs of a marker run by default now (analysis.registry.default_detector_name)."""

    name: str
    sha256: str  # empty for classic
    version: ModelVersion | None

    @classmethod
    def current(cls, marker: str = BASELINE_MARKER) -> Baseline:
        from .registry import active_model

        version = active_model(None, marker)
        if version is None:
            return cls(CLASSIC_DETECTOR, "", None)
        return cls(version.name, version.sha256, version)

    def matches(self, evaluation: ModelEvaluation) -> bool:
        return (evaluation.baseline, evaluation.baseline_sha256) == (self.name, self.sha256)


def recorded_val_fields(candidate: ModelVersion, spec: str) -> list[str] | None:
    """The names of the held-out fields the card recorded for `spec`; None for a card from before they were
    recorded (then only their count is checked)."""
    for s in (candidate.training_data or {}).get("sources") or []:
        if isinstance(s, dict) and s.get("source") == spec and isinstance(s.get("val_fields"), list):
            return sorted(str(n) for n in s["val_fields"])
    return None


def recorded_marker(candidate: ModelVersion, spec: str) -> str | None:
    """The marker the card recorded for `spec` (analysis.datasets.describe); None for a card from before."""
    for s in (candidate.training_data or {}).get("sources") or []:
        if isinstance(s, dict) and s.get("source") == spec and s.get("marker"):
            return str(s["marker"])
    return None


def held_out_data(candidate: ModelVersion) -> list:
    """The candidate's recorded held-out split, one analysis.evaluation.EvalData per recorded source (read
    again, at its working resolution); PromotionError when there is none or it no longer reads as recorded."""
    from . import datasets
    from .evaluation import EvalData, EvalField

    recorded = candidate.held_out_sources()
    if not recorded:
        raise PromotionError(f"{candidate.name} has no held-out evaluation (no held-out fields in its training "
                             "data): it cannot be promoted. Train it on data from more than one slide.")
    evaluation_marker(candidate)  # before reading any field: a model of unknown marker is compared with nothing
    out = []
    for spec, count in recorded:
        try:
            if datasets.parse_source(spec)[0] == "synthetic":  # val seeds are fixed; the field size is the default
                found = datasets.synthetic_samples(count, "val", candidate.mpp)
            else:
                found = [s for s in datasets.load_source(spec, candidate.mpp) if s.split == "val"]
        except datasets.DatasetError as exc:
            raise PromotionError(f"the held-out fields of {spec} cannot be read: {exc}") from None
        if len(found) != count:
            raise PromotionError(f"the held-out split of {spec} has changed ({len(found)} fields now, {count} when "
                                 f"{candidate.name} was trained): it cannot be compared as recorded.")
        names = recorded_val_fields(candidate, spec)
        if names is not None and sorted(s.name for s in found) != names:
            # Same count, other fields (slides accepted since move the split): some may have been trained on.
            raise PromotionError(f"the held-out split of {spec} has changed (other fields than when {candidate.name} "
                                 "was trained, some of which it may have trained on): it cannot be compared as recorded.")
        fields = [EvalField(s.name, s.rgb, s.xy, s.labels, s.mpp, datasets.metric_ignore_xy(s)) for s in found]
        try:
            compartment = source_compartment(spec, recorded_marker(candidate, spec))
        except datasets.UnknownMarker as exc:
            raise PromotionError(f"the held-out fields of {spec} cannot be scored: {exc}") from None
        out.append(EvalData(spec, fields, any(s.synthetic for s in found), compartment))
    return out


OTHER_HALF = "other half trained on: the right halves of fields whose left halves it trained on"


def not_held_out(spec: str) -> str:
    """Why a recorded source's val fields are not held out for the candidate; "" when they are. Such a source
    is shown, labelled, but counts in neither the pooled nor the equally weighted row."""
    from .datasets import val_is_other_half

    return OTHER_HALF if val_is_other_half(spec) else ""


def pooled(candidate: ModelVersion, sources: list):
    """All the sources' fields as one EvalData (counts pooled: the largest source weighs most). Its compartment
    is unused: a field is scored with its own source's detector (_PerField)."""
    from .evaluation import EvalData

    synthetic = any(d.synthetic for d in sources)
    names = "; ".join(f"{d.name}: {len(d.fields)} field(s)" for d in sources)
    label = ("SYNTHETIC " if synthetic else "") + f"held-out split of {candidate.name} ({names})"
    return EvalData(label, [f for d in sources for f in d.fields], synthetic, "per source")


class _PerField:
    """Runs each field once with the detector of its source (the classic default reads the nucleus on Ki-67
    sources), so the per-source rows and the pooled row score the same detections. score_detector hands
    detect each field's own image, so the image identifies the field."""

    def __init__(self, name: str, sources: list, detector_of):
        self.name, self._seen = name, {}
        self._detector = {id(f.rgb): detector_of(d) for d in sources for f in d.fields}

    def detect(self, rgb, mpp):
        if id(rgb) not in self._seen:
            self._seen[id(rgb)] = (rgb, self._detector[id(rgb)].detect(rgb, mpp))  # the image kept: its id stays
        return self._seen[id(rgb)][1]


def _scored(detector, data) -> dict:
    from .evaluation import score_detector

    score = score_detector(detector, data).to_dict()
    score.pop("per_field", None)  # the pooled numbers are what the review compares
    return score


def check_lineage(candidate: ModelVersion, held_out: list[str]) -> None:
    """PromotionError when a held-out field (a name, or another annotation of that field) is one the candidate,
    or any model of its --init-from chain (the Lineage on its card), trained on, or when that is unknown: the
    weights may have seen a held-out slide through a predecessor."""
    from .datasets import same_field
    from .training_card import read_card_beside

    data = candidate.training_data or {}
    lineage = data.get("lineage")
    if lineage is None:  # a card from before lineage was recorded: its registered card says if it was fine-tuned
        card = read_card_beside(candidate.path())
        if not isinstance(card, dict) or "training" not in card:
            lineage = {"unchecked": "its card does not say whether it was fine-tuned from another model"}
        elif card["training"].get("initialised_from"):
            lineage = {"initialised_from": card["training"]["initialised_from"],
                       "unchecked": "its card is from before the fields of the models it descends from were recorded"}
        else:
            lineage = {}
    if lineage.get("unchecked"):
        parent = f" (fine-tuned from {lineage['initialised_from']})" if lineage.get("initialised_from") else ""
        raise PromotionError(f"the lineage of {candidate.name}{parent} cannot be checked: {lineage['unchecked']}. "
                             "Whether its held-out fields are unseen by the weights it started from is unknown, so "
                             "it cannot be promoted: train it from a model whose card lists its training fields.")
    trained = {same_field(n) for s in data.get("sources") or [] if isinstance(s, dict)
               for n in s.get("train_fields") or []} | {same_field(n) for n in lineage.get("trained_fields") or []}
    seen = sorted({n for n in held_out if same_field(n) in trained})
    if seen:
        chain = " <- ".join([candidate.name, *lineage.get("models", [])])
        listed = ", ".join(seen[:5]) + (", ..." if len(seen) > 5 else "")
        raise PromotionError(f"{len(seen)} of its held-out field(s) ({listed}) "
                             f"were trained on in its lineage ({chain}): they are not held out for it, so it cannot "
                             "be promoted on them.")


def lineage_text(candidate: ModelVersion) -> str:
    """What the review page says of the weights the candidate started from (check_lineage decides)."""
    lineage = (candidate.training_data or {}).get("lineage")
    if lineage is None:
        return "not recorded on its card (trained before lineage was recorded)"
    if lineage.get("unchecked"):
        return f"fine-tuned from {lineage.get('initialised_from')}: unknown ({lineage['unchecked']})"
    if not lineage.get("models"):
        return "trained from scratch (no --init-from)"
    return (f"fine-tuned from {' <- '.join(lineage['models'])}; the {len(lineage.get('trained_fields') or [])} "
            "field(s) they trained on are checked against its held-out fields")


def check_reviewable(candidate: ModelVersion) -> None:
    if candidate.status == ModelStatus.CLINICAL:
        raise PromotionError(f"{candidate.name} is already released for clinical use.")
    if not candidate.metrics:
        raise PromotionError(f"{candidate.name} has empty metrics (no held-out evaluation when it was trained): "
                             "it cannot be promoted.")


def do_evaluate(candidate: ModelVersion, user=None) -> ModelEvaluation:
    """Score the candidate and the current default on the candidate's held-out split, pooled and per
    source; stored."""
    from .detectors import ModelDetector

    check_reviewable(candidate)
    sources = held_out_data(candidate)
    marker = evaluation_marker(candidate)
    check_lineage(candidate, [f.name for d in sources for f in d.fields])
    counted = [d for d in sources if not not_held_out(d.name)]
    if not counted:
        raise PromotionError(f"none of the validation fields of {candidate.name} is held out ("
                             + "; ".join(f"{d.name}: {not_held_out(d.name)}" for d in sources)
                             + "): it cannot be promoted on them. Train it with a source whose val fields are "
                               "other slides or images.")
    data = pooled(candidate, counted)
    baseline = Baseline.current(marker)
    try:
        model = ModelDetector.from_checkpoint(candidate.path(), name=candidate.name)
    except Exception as exc:  # noqa: BLE001  a missing file, or torch's many errors for a damaged one
        raise PromotionError(f"the file of {candidate.name} cannot be loaded ({type(exc).__name__}): not evaluated. "
                             "Restore it from the backup or register the model again.") from None
    if model.sha256 != candidate.sha256:
        raise PromotionError(f"the file of {candidate.name} is not the registered one (sha256 differs): not evaluated.")
    defaults = {c: _load_default(baseline, c) for c in sorted({d.compartment for d in sources})}
    detector = _PerField(candidate.name, sources, lambda d: model)
    default = _PerField(baseline.name, sources, lambda d: defaults[d.compartment])
    per_source = [{"source": d.name, "fields": len(d.fields), "synthetic": d.synthetic,
                   "held_out": not not_held_out(d.name), "note": not_held_out(d.name),
                   "default_compartment": d.compartment if baseline.version is None else "",
                   "candidate": _scored(detector, d), "default": _scored(default, d)} for d in sources]
    return ModelEvaluation.objects.create(
        model_version=candidate, baseline=baseline.name, baseline_sha256=baseline.sha256, marker=marker,
        data=data.name, fields=len(data.fields), synthetic=data.synthetic, candidate_scores=_scored(detector, data),
        baseline_scores=_scored(default, data), per_source=per_source, created_by=user)


def _load_default(baseline: Baseline, compartment: str):
    from .detectors import load_detector
    from .registry import UnknownDetector

    try:
        default = load_detector(baseline.name, compartment=compartment)
    except UnknownDetector as exc:
        raise PromotionError(f"the current default cannot be loaded: {exc}. Not evaluated.") from None
    except Exception as exc:  # noqa: BLE001
        raise PromotionError(f"the file of the default {baseline.name} cannot be loaded ({type(exc).__name__}): "
                             "not evaluated.") from None
    if baseline.version is not None and getattr(default, "sha256", "") != baseline.sha256:
        raise PromotionError(f"the file of the default {baseline.name} is not the registered one: not evaluated.")
    return default


def current_evaluation(candidate: ModelVersion) -> ModelEvaluation | None:
    """The latest evaluation against the default as it is now (an older default's does not count)."""
    marker = evaluation_marker(candidate)
    baseline = Baseline.current(marker)
    # One recorded before the sources were scored apart pooled them (the largest source decided): not counted.
    return next((e for e in candidate.evaluations.all()
                 if baseline.matches(e) and e.marker == marker and e.per_source), None)


def do_promote(candidate: ModelVersion, user, reason: str) -> ModelPromotion:
    """Release the candidate for clinical use (selectable in clinical jobs; activating it as a
    default stays a separate admin step). Needs a reason and an evaluation against the current default."""
    reason = (reason or "").strip()
    with transaction.atomic():
        candidate = ModelVersion.objects.select_for_update().get(pk=candidate.pk)
        check_reviewable(candidate)
        check_lineage(candidate, [n for spec, _ in candidate.held_out_sources()
                                  for n in recorded_val_fields(candidate, spec) or []])
        if not reason:
            raise PromotionError("Give the reason for the promotion: it is recorded with your name.")
        evaluation = current_evaluation(candidate)
        if evaluation is None:
            raise PromotionError(f"{candidate.name} has not been evaluated against the current default "
                                 f"({Baseline.current(evaluation_marker(candidate)).name}) on its held-out fields: "
                                 "evaluate it first.")
        before = candidate.status
        candidate.set_status(ModelStatus.CLINICAL)
        candidate.save()  # audited (analysis.audit)
        return ModelPromotion.objects.create(model_version=candidate, evaluation=evaluation, from_status=before,
                                             to_status=ModelStatus.CLINICAL, reason=reason, promoted_by=user)


def candidates():
    """Models awaiting a decision: registered, not (yet) released for clinical use."""
    return ModelVersion.objects.exclude(status=ModelStatus.CLINICAL).order_by("-created_at")


METRIC_ROWS = (
    ("Detection F1", ("f1", "detection"), True),
    ("Positive F1", ("f1", "positive"), True),
    ("Negative F1", ("f1", "negative"), True),
    ("Detection precision", ("precision", "detection"), True),
    ("Detection recall", ("recall", "detection"), True),
    ("Class accuracy (matched)", ("class_accuracy",), True),
    ("Negatives called positive", ("false_positive_rate",), False),
    ("Positive-% error, mean (pp)", ("positive_pct_abs_error",), False),
    ("Positive-% error, worst field (pp)", ("positive_pct_abs_error_max",), False),
    ("Count error, mean", ("count_mae",), False),
)


def _compare(candidate_scores: dict, default_scores: dict, path, higher_better) -> tuple:
    cand, base = _get(candidate_scores, path), _get(default_scores, path)
    better = None
    if cand is not None and base is not None and cand != base:
        better = "candidate" if (cand > base) == higher_better else "default"
    return cand, base, better


def comparison_rows(evaluation: ModelEvaluation) -> list[dict]:
    """One row per metric: candidate, default, and which is better (higher or lower is better)."""
    rows = []
    for label, path, higher_better in METRIC_ROWS:
        cand, base, better = _compare(evaluation.candidate_scores, evaluation.baseline_scores, path, higher_better)
        rows.append({"label": label, "candidate": cand, "default": base, "better": better})
    return rows


# The metrics of the per-source table (a row per source; every metric would make it too wide to read).
SOURCE_METRICS = tuple(r for r in METRIC_ROWS if r[0] in (
    "Detection F1", "Positive F1", "Negative F1", "Positive-% error, mean (pp)"))


@dataclass(frozen=True)
class SourceRow:
    """One line of the per-source table: a source, the pooled fields, or the sources weighted equally."""

    label: str
    fields: int
    synthetic: bool
    cells: tuple  # per SOURCE_METRICS: (candidate, default, better)
    note: str = ""
    held_out: bool = True  # False: shown, but counted in neither the pooled nor the equally weighted row


def source_rows(evaluation: ModelEvaluation) -> list[SourceRow]:
    """The pooled row, a row per held-out source, and their mean with each source weighted equally (none
    for an evaluation recorded before the sources were scored apart)."""
    if not evaluation.per_source:
        return []
    rows = [SourceRow("Pooled (held-out fields)", evaluation.fields, evaluation.synthetic,
                      _cells(evaluation.candidate_scores, evaluation.baseline_scores))]
    sources = evaluation.per_source
    for s in sources:
        reads = f"{evaluation.baseline} read the {s['default_compartment']}" if s.get("default_compartment") else ""
        rows.append(SourceRow(s["source"], s["fields"], s["synthetic"], _cells(s["candidate"], s["default"]),
                              "; ".join(n for n in (s.get("note", ""), reads) if n), s.get("held_out", True)))
    counted = [s for s in sources if s.get("held_out", True)]
    if len(counted) > 1:
        means = [_mean([s[who] for s in counted]) for who in ("candidate", "default")]
        rows.append(SourceRow(f"Sources weighted equally ({len(counted)})", sum(s["fields"] for s in counted),
                              any(s["synthetic"] for s in counted), _cells(*means)))
    return rows


def _cells(candidate_scores: dict, default_scores: dict) -> tuple:
    return tuple(_compare(candidate_scores, default_scores, path, higher) for _, path, higher in SOURCE_METRICS)


def _mean(scores: list[dict]) -> dict:
    """Each SOURCE_METRICS value averaged over the sources that have it (nested as in a score)."""
    out: dict = {}
    for _, path, _ in SOURCE_METRICS:
        values = [v for v in (_get(s, path) for s in scores) if v is not None]
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = sum(values) / len(values) if values else None
    return out


def _get(scores: dict, path):
    for key in path:
        scores = scores.get(key) if isinstance(scores, dict) else None
    return scores
