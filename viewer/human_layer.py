"""The pathologists' layer of a job as stored: its corrections folded, its drawn regions, and the
version both bump (optimistic concurrency)."""

from __future__ import annotations

from django.utils import timezone

from viewer.errors import CorrectionConflict
from viewer.geometry import Regions, regions_from_rows
from viewer.overlay import CorrectionState, fold_corrections


def correction_state(job) -> CorrectionState:
    from viewer.models import Correction

    return fold_corrections(Correction.objects.filter(job=job).only(
        "pk", "version", "op", "detection", "target_id", "x", "y", "label", "undone_by_id"))


def correction_version(job) -> int:
    from viewer.models import CorrectionSet

    return CorrectionSet.objects.filter(job=job).values_list("version", flat=True).first() or 0


def job_regions(job) -> Regions:
    from viewer.models import Region

    return regions_from_rows(Region.objects.filter(slide_id=job.slide_id, deleted_at__isnull=True).only("kind", "vertices"))


def conflict_message(correction_set) -> str:
    who = correction_set.updated_by.get_username() if correction_set.updated_by else "another user"
    when = timezone.localtime(correction_set.updated_at).strftime("%Y-%m-%d %H:%M:%S") \
        if correction_set.updated_at else "an earlier time"
    return f"This slide was corrected by {who} at {when} since you loaded it; reload to see their change."


def locked_correction_set(job, base: int):
    from viewer.models import CorrectionSet

    correction_set = CorrectionSet.objects.select_for_update(of=("self",)).select_related("updated_by").get(job=job)
    if correction_set.is_stale(base):
        raise CorrectionConflict(conflict_message(correction_set), correction_set.version)
    return correction_set
