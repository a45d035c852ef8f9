"""Pathologists' corrections of a job's detections: validation, saving with optimistic concurrency,
history."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from analysis.labels import LABEL_NAMES
from viewer.choices import CorrectionOp
from viewer.errors import PointAlreadyThere, ViewerInputError
from viewer.human_layer import correction_state, locked_correction_set, read_at_one_version
from viewer.overlay import CorrectionState, fold_corrections, nearest_live_point
from viewer.params import (
    AddedPoint,
    CorrectionOpInput,
    PointRef,
    Relabel,
    UndoTarget,
    check_base_version,
    parse,
)
from viewer.scores import job_scores
from viewer.stores import job_mpp, job_store

# Without a pixel size, the pipeline's working 0.5 µm/px is assumed (check_free_spot).
ASSUMED_MPP = 0.5


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
        "active": row.is_active, "undone_by": row.undone_by_id, "carried_from": row.carried_from_id,
    }


def corrections_overview(job) -> dict:
    from viewer.models import Correction

    store = job_store(job)

    def read():
        rows = list(Correction.objects.filter(job=job).select_related("author"))
        return rows, job_scores(job, store, fold_corrections(rows))

    version, (rows, scores) = read_at_one_version(job, read)
    return {"version": version, "items": [correction_item(r) for r in rows], "scores": scores,
            "carry_over": carry_over(job)}


def carry_over(job) -> dict | None:
    """What the previous run's corrections became on this job (viewer.carry), with its message."""
    from viewer.carry import shown_report
    from viewer.models import CorrectionSet

    return shown_report(CorrectionSet.objects.filter(job=job).values_list("carry_report", flat=True).first())


def check_correction(job, store, state: CorrectionState, data: dict) -> dict:
    """Validate a correction against the current corrected result; returns the fields to save."""
    from viewer.models import Correction

    op = parse(CorrectionOpInput, data)["op"]
    if op == CorrectionOp.ADD:
        point = parse(AddedPoint, data, width=job.slide.width, height=job.slide.height)
        check_free_spot(job, store, state, point["x"], point["y"])
        return {"op": op, **point}
    if op == CorrectionOp.UNDO:
        target = parse(UndoTarget, data)["target"]
        row = Correction.objects.filter(job=job, pk=target).first()
        if row is None:
            raise ViewerInputError(f"correction {target} does not exist on this job")
        if row.op == CorrectionOp.UNDO:
            raise ViewerInputError("an undo cannot be undone; make the correction again")
        if row.undone_by_id is not None:
            raise ViewerInputError(f"correction {target} is already undone")
        return {"op": op, "target": row}
    index, added = parse(PointRef, {"detection": data.get("detection", data.get("id"))})["detection"]
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
        label = parse(Relabel, data)["label"]
        if label == current:
            raise ViewerInputError(f"the point is already {LABEL_NAMES[label]}")
        fields["label"] = label
    return fields


def add_min_distance_um(job) -> float:
    """The job's own dedupe radius (0.1-5 µm, default 3): closer than this the merge took two points for one
    cell, so an added point that close to a live one is that cell again (job_parameters fills in the
    pipeline's default)."""
    from workers.pipeline import job_parameters

    return float(job_parameters(job)["dedupe_radius_um"])


def check_free_spot(job, store, state: CorrectionState, x: float, y: float) -> None:
    """Refuse an added point within the job's dedupe radius of a live one (model detection not deleted, or an
    earlier added point): the report would count that cell twice. The error names the point to select."""
    mpp = job_mpp(job, store) or ASSUMED_MPP
    radius_um = add_min_distance_um(job)
    found = nearest_live_point(store, state, x, y, radius_um / mpp)
    if found is None:
        return
    point, label, distance = found
    what = f"added point {point}" if isinstance(point, str) else f"detection {point}"
    raise PointAlreadyThere(
        f"{what} ({LABEL_NAMES.get(label, label)}) is {distance * mpp:.1f} µm from here, closer than "
        f"{radius_um:g} µm: it is the same cell; select it to reclassify it instead of adding "
        f"another", point)


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
