"""Drawn include (tumour area) and exclude (necrosis, artefact, control tissue) regions: validation,
saving and soft deletion with the corrections' optimistic concurrency."""

from __future__ import annotations

import math

import numpy as np
from django.db import transaction
from django.utils import timezone

from viewer.choices import INCLUDE_REGION_KINDS, RegionKind
from viewer.errors import ViewerInputError
from viewer.geometry import regions_from_rows, segments_cross
from viewer.human_layer import correction_version, locked_correction_set
from viewer.params import check_base_version
from viewer.scores import job_scores
from viewer.stores import job_store

MAX_REGION_VERTICES = 1000


def region_item(row) -> dict:
    return {"id": row.pk, "kind": row.kind, "include": row.kind in INCLUDE_REGION_KINDS,
            "vertices": row.vertices, "version": row.version, "author": row.author.get_username(),
            "created_at": row.created_at.isoformat(), "active": row.deleted_at is None,
            "deleted_version": row.deleted_version,
            "deleted_by": row.deleted_by.get_username() if row.deleted_by_id else None,
            "deleted_at": row.deleted_at.isoformat() if row.deleted_at else None}


def check_region(job, data: dict) -> dict:
    """Validate a drawn region; returns {"kind", "vertices"} (rounded to 0.1 px, unclosed)."""
    kind = data.get("kind")
    if kind not in RegionKind.values:
        raise ViewerInputError(f"kind must be one of {', '.join(RegionKind.values)}")
    raw = data.get("vertices")
    if not isinstance(raw, list):
        raise ViewerInputError("vertices must be a list of [x, y] level-0 px")
    width, height = job.slide.width, job.slide.height
    vertices = []
    for i, v in enumerate(raw):
        if not (isinstance(v, (list, tuple)) and len(v) == 2
                and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in v)):
            raise ViewerInputError(f"vertex {i} must be [x, y] (numbers, level-0 px)")
        x, y = float(v[0]), float(v[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ViewerInputError(f"vertex {i} must be finite")
        if not (0 <= x <= width and 0 <= y <= height):
            raise ViewerInputError(f"vertex {i} ({x:g}, {y:g}) is outside the slide (0 to {width} x 0 to {height} px)")
        vertices.append([round(x, 1), round(y, 1)])
    if len(vertices) > 1 and vertices[0] == vertices[-1]:
        vertices.pop()  # a closed ring: drop the repeated first vertex
    if len(vertices) < 3:
        raise ViewerInputError(f"a region needs at least 3 vertices, got {len(vertices)}")
    if len(vertices) > MAX_REGION_VERTICES:
        raise ViewerInputError(f"a region has at most {MAX_REGION_VERTICES} vertices, got {len(vertices)}")
    if len({tuple(v) for v in vertices}) != len(vertices):
        raise ViewerInputError("the region repeats a vertex")
    poly = np.asarray(vertices, np.float64)
    area = 0.5 * abs(float(np.dot(poly[:, 0], np.roll(poly[:, 1], -1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], -1))))
    if segments_cross(poly):
        raise ViewerInputError("the region's outline crosses itself; draw it without crossing edges")
    if area < 1.0:
        raise ViewerInputError("the region has no area (its vertices are on one line)")
    return {"kind": kind, "vertices": vertices}


def regions_overview(job, include_deleted: bool = False) -> dict:
    from viewer.models import Region

    rows = Region.objects.filter(job=job).select_related("author", "deleted_by")
    if not include_deleted:
        rows = rows.filter(deleted_at__isnull=True)
    rows = list(rows)
    store = job_store(job)
    return {"version": correction_version(job), "items": [region_item(r) for r in rows],
            "scores": job_scores(job, store, regions=regions_from_rows(rows))}


def do_add_region(job, user, data) -> dict:
    """Save a region if data["base_version"] is current: {"version", "scores", "item"}."""
    from viewer.models import CorrectionSet, Region

    if not isinstance(data, dict):
        raise ViewerInputError("expected a JSON object")
    base = check_base_version(data)
    store = job_store(job)
    fields = check_region(job, data)
    CorrectionSet.objects.get_or_create(job=job)
    with transaction.atomic():
        correction_set = locked_correction_set(job, base)
        version = correction_set.bump(user, timezone.now())
        correction_set.save()
        row = Region.objects.create(job=job, version=version, author=user, **fields)
    row.author = user
    return {"version": version, "scores": job_scores(job, store), "item": region_item(row)}


def do_delete_region(job, user, region_id, data) -> dict:
    """Soft-delete a region if data["base_version"] is current: {"version", "scores", "item"}."""
    from viewer.models import CorrectionSet, Region

    base = check_base_version(data if isinstance(data, dict) else {})
    store = job_store(job)
    CorrectionSet.objects.get_or_create(job=job)
    with transaction.atomic():
        correction_set = locked_correction_set(job, base)
        row = Region.objects.select_for_update(of=("self",)).filter(job=job, pk=region_id).first()
        if row is None:
            raise ViewerInputError(f"region {region_id} does not exist on this job")
        if row.deleted_at is not None:
            raise ViewerInputError(f"region {region_id} is already deleted")
        now = timezone.now()
        version = correction_set.bump(user, now)
        correction_set.save()
        row.deleted_version, row.deleted_by, row.deleted_at = version, user, now
        row.save(update_fields=["deleted_version", "deleted_by", "deleted_at"])
    row = Region.objects.select_related("author", "deleted_by").get(pk=row.pk)
    return {"version": version, "scores": job_scores(job, store), "item": region_item(row)}
