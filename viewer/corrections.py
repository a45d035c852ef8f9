"""Pathologists' corrections of a job's detections: validation, saving with optimistic concurrency,
history."""

from __future__ import annotations

import math

from django.db import transaction
from django.utils import timezone

from analysis.labels import LABEL_CODES, LABEL_NAMES
from viewer.choices import CorrectionOp
from viewer.errors import ViewerInputError
from viewer.human_layer import correction_state, correction_version, locked_correction_set
from viewer.overlay import CorrectionState, fold_corrections
from viewer.params import check_base_version
from viewer.scores import job_scores
from viewer.stores import job_store


def correction_item(row) -> dict:
    detection = row.detection
    if row.target_id is not None and row.op in (CorrectionOp.DELETE, CorrectionOp.RECLASSIFY):
        detection = f"c{row.target_id}"
    return {
        "id": row.pk, "version": row.version, "op": row.op, "detection": detection,
        "point_id": f"c{row.pk}" if row.op == CorrectionOp.ADD else None,
        "target": row.target_id, "x": row.x, "y": row.y,
        "label": LABEL_NAMES.get(row.label) if row.label is not None else None,
        "author": row.author.get_username(), "created_at": row.created_at.isoformat(),
        "active": row.is_active, "undone_by": row.undone_by_id,
    }


def corrections_overview(job) -> dict:
    from viewer.models import Correction

    rows = list(Correction.objects.filter(job=job).select_related("author"))
    store = job_store(job)
    state = fold_corrections(rows)
    return {"version": correction_version(job), "items": [correction_item(r) for r in rows],
            "scores": job_scores(job, store, state)}


def _label(value) -> int:
    if isinstance(value, str) and value in LABEL_CODES:
        return LABEL_CODES[value]
    if isinstance(value, int) and not isinstance(value, bool) and value in LABEL_NAMES:
        return value
    raise ViewerInputError("label must be positive or negative")


def _coordinate(data, name, limit) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ViewerInputError(f"{name} must be a number (level-0 px)")
    try:
        value = float(value)
    except ValueError:
        raise ViewerInputError(f"{name} must be a number (level-0 px)") from None
    if not (math.isfinite(value) and 0 <= value < limit):
        raise ViewerInputError(f"{name}={value:g} is outside the slide (0 to {limit} px)")
    return value


def _point_ref(data) -> tuple[int | None, int | None]:
    """(store index, added-point correction id) named by data["detection"] (or data["id"])."""
    value = data.get("detection", data.get("id"))
    if value is None:
        raise ViewerInputError("detection is required: a point id from the overlay")
    if isinstance(value, str) and value.startswith("c"):
        try:
            return None, int(value[1:])
        except ValueError:
            raise ViewerInputError(f"detection {value!r} is not a point id") from None
    if isinstance(value, bool):
        raise ViewerInputError("detection must be a point id")
    try:
        index = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ViewerInputError(f"detection {str(value)[:40]!r} is not a point id") from None
    if isinstance(value, float) and value != index:
        raise ViewerInputError(f"detection {value!r} is not a point id")
    return index, None


def check_correction(job, store, state: CorrectionState, data: dict) -> dict:
    """Validate a correction against the current corrected result; returns the fields to save."""
    from viewer.models import Correction

    op = data.get("op")
    if op not in (CorrectionOp.ADD, CorrectionOp.DELETE, CorrectionOp.RECLASSIFY, CorrectionOp.UNDO):
        raise ViewerInputError(f"op must be one of {', '.join(CorrectionOp.values)}")
    if op == CorrectionOp.ADD:
        return {"op": op, "x": _coordinate(data, "x", job.slide.width), "y": _coordinate(data, "y", job.slide.height),
                "label": _label(data.get("label"))}
    if op == CorrectionOp.UNDO:
        target = data.get("target")
        try:
            target = int(target)
            if not 0 < target < 2**63:  # a database id; larger ones overflow the query
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise ViewerInputError("target is required: the id of the correction to undo") from None
        row = Correction.objects.filter(job=job, pk=target).first()
        if row is None:
            raise ViewerInputError(f"correction {target} does not exist on this job")
        if row.op == CorrectionOp.UNDO:
            raise ViewerInputError("an undo cannot be undone; make the correction again")
        if row.undone_by_id is not None:
            raise ViewerInputError(f"correction {target} is already undone")
        return {"op": op, "target": row}
    index, added = _point_ref(data)
    if added is not None:
        if added not in state.added:
            raise ViewerInputError(f"point c{added} does not exist (never added, deleted or undone)")
        current = state.added[added][2]
        fields = {"op": op, "target": Correction.objects.get(pk=added, job=job)}
    else:
        if not 0 <= index < len(store):
            raise ViewerInputError(f"detection {index} does not exist (the result has {len(store)})")
        if index in state.deleted:
            raise ViewerInputError(f"detection {index} is already deleted")
        current = state.relabelled.get(index, int(store.take([index]).labels[0]))
        fields = {"op": op, "detection": index}
    if op == CorrectionOp.RECLASSIFY:
        label = _label(data.get("label"))
        if label == current:
            raise ViewerInputError(f"the point is already {LABEL_NAMES[label]}")
        fields["label"] = label
    return fields


def do_add_correction(job, user, data: dict) -> dict:
    """Save one correction if `data["base_version"]` is the current version.

    Returns {"version", "scores", "item"}; raises ViewerInputError (nothing saved),
    CorrectionConflict (stale base_version) or NoResult.
    """
    from viewer.models import Correction, CorrectionSet

    if not isinstance(data, dict):
        raise ViewerInputError("expected a JSON object")
    base = check_base_version(data)
    store = job_store(job)
    CorrectionSet.objects.get_or_create(job=job)
    with transaction.atomic():
        correction_set = locked_correction_set(job, base)
        state = correction_state(job)
        fields = check_correction(job, store, state, data)
        now = timezone.now()
        version = correction_set.bump(user, now)
        correction_set.save()
        row = Correction.objects.create(job=job, version=version, author=user, **fields)
        if row.op == CorrectionOp.UNDO:
            target = Correction.objects.select_for_update().get(pk=row.target_id)
            target.mark_undone(row)
            target.save(update_fields=["undone_by"])
        state = correction_state(job)
    row.author = user
    return {"version": version, "scores": job_scores(job, store, state), "item": correction_item(row)}
