"""Drawn include (tumour area) and exclude (necrosis, artefact, control tissue) regions: validation,
saving and soft deletion with the corrections' optimistic concurrency."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from viewer.choices import INCLUDE_REGION_KINDS
from viewer.errors import ViewerInputError
from viewer.geometry import outline_problem, regions_from_rows
from viewer.human_layer import correction_version, locked_correction_set
from viewer.params import RegionInput, check_base_version, parse
from viewer.scores import job_scores
from viewer.stores import job_store


def region_item(row) -> dict:
    return {"id": row.pk, "kind": row.kind, "include": row.kind in INCLUDE_REGION_KINDS,
            "vertices": row.vertices, "version": row.version, "author": row.author.get_username(),
            "drawn_on": row.drawn_on_id,
            "created_at": row.created_at.isoformat(), "active": row.deleted_at is None,
            "deleted_version": row.deleted_version,
            "deleted_by": row.deleted_by.get_username() if row.deleted_by_id else None,
            "deleted_at": row.deleted_at.isoformat() if row.deleted_at else None}


def check_region(job, data: dict) -> dict:
    """Validate a drawn region; returns {"kind", "vertices"} (rounded to 0.1 px, unclosed)."""
    fields = parse(RegionInput, data, width=job.slide.width, height=job.slide.height)
    problem = outline_problem(fields["vertices"])
    if problem:
        raise ViewerInputError(problem)
    return {"kind": fields["kind"], "vertices": fields["vertices"]}


def regions_overview(job, include_deleted: bool = False) -> dict:
    from viewer.models import Region

    rows = Region.objects.filter(slide_id=job.slide_id).select_related("author", "deleted_by")
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
        row = Region.objects.create(slide_id=job.slide_id, drawn_on=job, version=version, author=user, **fields)
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
        row = Region.objects.select_for_update(of=("self",)).filter(slide_id=job.slide_id, pk=region_id).first()
        if row is None:
            raise ViewerInputError(f"region {region_id} does not exist on this slide")
        if row.deleted_at is not None:
            raise ViewerInputError(f"region {region_id} is already deleted")
        now = timezone.now()
        version = correction_set.bump(user, now)
        correction_set.save()
        row.deleted_version, row.deleted_by, row.deleted_at = version, user, now
        row.save(update_fields=["deleted_version", "deleted_by", "deleted_at"])
    row = Region.objects.select_related("author", "deleted_by").get(pk=row.pk)
    return {"version": version, "scores": job_scores(job, store), "item": region_item(row)}
