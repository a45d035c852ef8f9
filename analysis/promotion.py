"""Promotion review: a research model is released for clinical use only after a pathologist or
admin has seen it scored beside the current default detector on the same held-out fields.

The metrics in a model card and a default's own numbers come from different data and code paths,
so they are never compared: at review time both detectors are run, through the same
analysis.evaluation.score_detector, on the candidate's recorded held-out split (the "val" fields
of its training sources, as its card counted them). A model without held-out fields, or whose
split can no longer be read as recorded, cannot be promoted; nor can one with empty metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from .choices import CLASSIC_DETECTOR, Marker, ModelStatus
from .models import ModelEvaluation, ModelPromotion, ModelVersion

# The membrane compartment for the classic baseline: PD-L1, the marker the platform reports; on held-out
# fields that are all Ki-67 (analysis.datasets.is_nuclear_marker_source) the nucleus, as a Ki-67 job runs it
# (the membrane setting there would weaken the default and flatter the candidate).
BASELINE_MARKER = Marker.PDL1
BASELINE_COMPARTMENT = "membrane"


def baseline_compartment(candidate: ModelVersion) -> str:
    return "nucleus" if candidate.held_out_marker() == Marker.KI67 else BASELINE_COMPARTMENT


def evaluation_marker(candidate: ModelVersion) -> str:
    """The marker the candidate's held-out fields are stained for (ModelVersion.held_out_marker), so the default
    it is compared with and may replace: a model measured on one marker is never made the default of the other
    (ModelVersion.check_activation)."""
    return candidate.held_out_marker()


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


def held_out_data(candidate: ModelVersion):
    """The candidate's recorded held-out split as analysis.evaluation.EvalData (read again, at its
    working resolution); PromotionError when there is none or it no longer reads as recorded."""
    from . import datasets
    from .evaluation import EvalData, EvalField

    recorded = candidate.held_out_sources()
    if not recorded:
        raise PromotionError(f"{candidate.name} has no held-out evaluation (no held-out fields in its training "
                             "data): it cannot be promoted. Train it on data from more than one slide.")
    samples = []
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
        samples += found
    synthetic = any(s.synthetic for s in samples)
    names = "; ".join(f"{spec}: {count} field(s)" for spec, count in recorded)
    label = ("SYNTHETIC " if synthetic else "") + f"held-out split of {candidate.name} ({names})"
    fields = [EvalField(s.name, s.rgb, s.xy, s.labels, s.mpp, s.ignore_xy) for s in samples]
    return EvalData(label, fields, synthetic=synthetic, compartment=baseline_compartment(candidate))


def check_reviewable(candidate: ModelVersion) -> None:
    if candidate.status == ModelStatus.CLINICAL:
        raise PromotionError(f"{candidate.name} is already released for clinical use.")
    if not candidate.metrics:
        raise PromotionError(f"{candidate.name} has empty metrics (no held-out evaluation when it was trained): "
                             "it cannot be promoted.")


def do_evaluate(candidate: ModelVersion, user=None) -> ModelEvaluation:
    """Score the candidate and the current default on the candidate's held-out split; stored."""
    from .detectors import ModelDetector, load_detector
    from .evaluation import score_detector

    from .registry import UnknownDetector

    check_reviewable(candidate)
    data = held_out_data(candidate)
    marker = evaluation_marker(candidate)
    baseline = Baseline.current(marker)
    try:
        detector = ModelDetector.from_checkpoint(candidate.path(), name=candidate.name)
    except Exception as exc:  # noqa: BLE001  a missing file, or torch's many errors for a damaged one
        raise PromotionError(f"the file of {candidate.name} cannot be loaded ({type(exc).__name__}): not evaluated. "
                             "Restore it from the backup or register the model again.") from None
    if detector.sha256 != candidate.sha256:
        raise PromotionError(f"the file of {candidate.name} is not the registered one (sha256 differs): not evaluated.")
    try:
        default = load_detector(baseline.name, compartment=data.compartment)
    except UnknownDetector as exc:
        raise PromotionError(f"the current default cannot be loaded: {exc}. Not evaluated.") from None
    except Exception as exc:  # noqa: BLE001
        raise PromotionError(f"the file of the default {baseline.name} cannot be loaded ({type(exc).__name__}): "
                             "not evaluated.") from None
    if baseline.version is not None and getattr(default, "sha256", "") != baseline.sha256:
        raise PromotionError(f"the file of the default {baseline.name} is not the registered one: not evaluated.")
    scores = [score_detector(d, data).to_dict() for d in (detector, default)]
    for score in scores:
        score.pop("per_field", None)  # the pooled numbers are what the review compares
    return ModelEvaluation.objects.create(
        model_version=candidate, baseline=baseline.name, baseline_sha256=baseline.sha256, marker=marker,
        data=data.name, fields=len(data.fields), synthetic=data.synthetic, candidate_scores=scores[0],
        baseline_scores=scores[1], created_by=user)


def current_evaluation(candidate: ModelVersion) -> ModelEvaluation | None:
    """The latest evaluation against the default as it is now (an older default's does not count)."""
    marker = evaluation_marker(candidate)
    baseline = Baseline.current(marker)
    return next((e for e in candidate.evaluations.all() if baseline.matches(e) and e.marker == marker), None)


def do_promote(candidate: ModelVersion, user, reason: str) -> ModelPromotion:
    """Release the candidate for clinical use (selectable in clinical jobs; activating it as a
    default stays a separate admin step). Needs a reason and an evaluation against the current default."""
    reason = (reason or "").strip()
    with transaction.atomic():
        candidate = ModelVersion.objects.select_for_update().get(pk=candidate.pk)
        check_reviewable(candidate)
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


def comparison_rows(evaluation: ModelEvaluation) -> list[dict]:
    """One row per metric: candidate, default, and which is better (higher or lower is better)."""
    rows = []
    for label, path, higher_better in METRIC_ROWS:
        values = []
        for scores in (evaluation.candidate_scores, evaluation.baseline_scores):
            value = scores
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            values.append(value)
        cand, base = values
        better = None
        if cand is not None and base is not None and cand != base:
            better = "candidate" if (cand > base) == higher_better else "default"
        rows.append({"label": label, "candidate": cand, "default": base, "better": better})
    return rows
