"""Drawn include (tumour area) and exclude (necrosis, artefact, control tissue) regions: validation,
saving and soft deletion with the corrections' optimistic concurrency, and each region's own counts,
TPS and area (the corrected points inside its outline, an include region's less the active exclusions;
mm² at the job's pixel size)."""

from __future__ import annotations

import numpy as np
from django.db import transaction
from django.utils import timezone

from analysis.labels import NEGATIVE, POSITIVE
from analysis.scoring import stated_pct, tps
from viewer.choices import INCLUDE_REGION_KINDS
from viewer.errors import ViewerInputError
from viewer.geometry import (
    Regions, area_mm2, counted_area_mm2, covered, outline_problem, polygon, regions_from_rows,
)
from viewer.human_layer import (
    bump_all, correction_state, job_regions, locked_slide_correction_sets, read_at_one_version,
)
from viewer.overlay import corrected_points
from viewer.params import RegionInput, check_base_version, parse
from viewer.scores import job_scores
from viewer.stores import job_mpp, job_store


def region_item(row) -> dict:
    return {"id": row.pk, "kind": row.kind, "include": row.kind in INCLUDE_REGION_KINDS,
            "vertices": row.vertices, "version": row.version, "author": row.author.get_username(),
            "drawn_on": row.drawn_on_id,
            "created_at": row.created_at.isoformat(), "active": row.deleted_at is None,
            "deleted_version": row.deleted_version,
            "deleted_by": row.deleted_by.get_username() if row.deleted_by_id else None,
            "deleted_at": row.deleted_at.isoformat() if row.deleted_at else None}


def region_stats(vertices, xy: np.ndarray, labels: np.ndarray, mpp: float | None, include: bool = True,
                 exclude=()) -> dict:
    """Tumour cells of the region (corrected points; a point on an outline is inside it), their TPS (None
    without tumour cells) and the area in mm² (None without a pixel size).

    An include region counts what the slide's score counts of it: its outline less the active `exclude`
    polygons (a necrosis hole inside a tumour area is neither counted nor measured), as Regions.mask does.
    An exclude region reports what it takes out: everything inside its outline. outline_area_mm2 is the
    outline's own area either way."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    inside = covered(polygon(vertices), xy)
    holes = list(exclude) if include else []
    for hole in holes:
        if inside.any():
            inside &= ~covered(hole, xy)
    inside = labels[inside]
    positive, negative = int((inside == POSITIVE).sum()), int((inside == NEGATIVE).sum())
    value = tps(positive, negative)
    area, outline = counted_area_mm2(vertices, holes, mpp), area_mm2(vertices, mpp)
    return {"counts": {"positive": positive, "negative": negative},
            "tps": stated_pct(value),
            "area_mm2": None if area is None else round(area, 6),
            "outline_area_mm2": None if outline is None else round(outline, 6)}


def region_items(job, store, rows, state=None, regions: Regions | None = None) -> list[dict]:
    """region_item of each row with its region_stats, the job's corrected points read once; `regions`: the
    slide's active regions, whose exclusions an include region's stats leave out (read when not given)."""
    xy, labels = corrected_points(store, state if state is not None else correction_state(job))
    mpp = job_mpp(job, store)
    exclude = (regions if regions is not None else job_regions(job)).exclude
    return [{**region_item(row), **region_stats(row.vertices, xy, labels, mpp, row.kind in INCLUDE_REGION_KINDS,
                                                exclude)} for row in rows]


def check_region(job, data: dict) -> dict:
    """Validate a drawn region; returns {"kind", "vertices", "replaces"} (vertices rounded to 0.1 px, unclosed;
    replaces: a region id or None)."""
    fields = parse(RegionInput, data, width=job.slide.width, height=job.slide.height)
    problem = outline_problem(fields["vertices"])
    if problem:
        raise ViewerInputError(problem)
    return {"kind": fields["kind"], "vertices": fields["vertices"], "replaces": fields["replaces"]}


def regions_overview(job, include_deleted: bool = False) -> dict:
    from viewer.models import Region

    query = Region.objects.filter(slide_id=job.slide_id).select_related("author", "deleted_by")
    if not include_deleted:
        query = query.filter(deleted_at__isnull=True)
    store = job_store(job)

    def read():
        rows = list(query.all())
        state, regions = correction_state(job), regions_from_rows(rows)  # active ones only
        return region_items(job, store, rows, state, regions), job_scores(job, store, state, regions=regions)

    version, (items, scores) = read_at_one_version(job, read)
    return {"version": version, "items": items, "scores": scores}


def do_add_region(job, user, data) -> dict:
    """Save a region if data["base_version"] is current: {"version", "scores", "item"}.

    With data["replaces"] (an active region's id) that region is soft-deleted in the same transaction and at
    the same version, and answered as "replaced": an edit of its vertices is one save, so a refused one (409,
    400) changes neither outline. As two requests (add, then delete), a conflict on the delete left both
    outlines counting."""
    from viewer.models import Region

    if not isinstance(data, dict):
        raise ViewerInputError("expected a JSON object")
    base = check_base_version(data)
    store = job_store(job)
    fields = check_region(job, data)
    replaces = fields.pop("replaces")
    with transaction.atomic():
        own, others = locked_slide_correction_sets(job, base)
        old = locked_active_region(job, replaces) if replaces is not None else None
        now = timezone.now()
        version = bump_all(own, others, user, now)
        row = Region.objects.create(slide_id=job.slide_id, drawn_on=job, version=version, author=user, **fields)
        if old is not None:
            soft_delete(old, version, user, now)
    row.author = user
    out = {"version": version, "scores": job_scores(job, store)}
    if old is None:
        return {**out, "item": region_items(job, store, [row])[0]}
    old = Region.objects.select_related("author", "deleted_by").get(pk=old.pk)
    item, replaced = region_items(job, store, [row, old])
    return {**out, "item": item, "replaced": replaced}


def locked_active_region(job, region_id: int):
    """The slide's active region `region_id`, row-locked; ViewerInputError when it is missing or deleted."""
    from viewer.models import Region

    row = Region.objects.select_for_update(of=("self",)).filter(slide_id=job.slide_id, pk=region_id).first()
    if row is None:
        raise ViewerInputError(f"region {region_id} does not exist on this slide")
    if row.deleted_at is not None:
        raise ViewerInputError(f"region {region_id} is already deleted")
    return row


def soft_delete(row, version: int, user, now) -> None:
    row.deleted_version, row.deleted_by, row.deleted_at = version, user, now
    row.save(update_fields=["deleted_version", "deleted_by", "deleted_at"])


def do_delete_region(job, user, region_id, data) -> dict:
    """Soft-delete a region if data["base_version"] is current: {"version", "scores", "item"}."""
    from viewer.models import Region

    base = check_base_version(data if isinstance(data, dict) else {})
    store = job_store(job)
    with transaction.atomic():
        own, others = locked_slide_correction_sets(job, base)
        row = locked_active_region(job, region_id)
        now = timezone.now()
        version = bump_all(own, others, user, now)
        soft_delete(row, version, user, now)
    row = Region.objects.select_related("author", "deleted_by").get(pk=row.pk)
    return {"version": version, "scores": job_scores(job, store), "item": region_items(job, store, [row])[0]}
