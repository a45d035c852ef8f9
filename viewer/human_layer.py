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


def read_at_one_version(job, read, attempts: int = 5):
    """(version, read()) where everything read() saw belongs to that version.  Every save of a correction
    or region bumps the version, so an unchanged version before and after the read proves it; otherwise it
    is read again.  Should saves keep landing, the version from *before* the last read is returned: a page
    that saves on it gets a conflict and reloads, never a save accepted against items it did not see."""
    for _ in range(max(attempts, 1)):
        before = correction_version(job)
        result = read()
        if correction_version(job) == before:
            return before, result
    return before, result


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


def locked_slide_correction_sets(job, base: int):
    """For a region change: the job's correction set (its base version checked) and those of every other
    job on the slide, all row-locked in one order (no deadlock between two slides' reviewers).

    Why: regions belong to the slide, so every job on it counts inside them; each job's version moves
    with a region change, so a reviewer on another run of the same slide meets a conflict instead of a
    silent change, and a report's draft of that run sees its corrections version moved."""
    from analysis.models import AnalysisJob
    from viewer.models import CorrectionSet

    for other in AnalysisJob.objects.filter(slide_id=job.slide_id).values_list("pk", flat=True):
        CorrectionSet.objects.get_or_create(job_id=other)
    sets = list(CorrectionSet.objects.select_for_update(of=("self",)).select_related("updated_by")
                .filter(job__slide_id=job.slide_id).order_by("pk"))
    own = next(s for s in sets if s.job_id == job.pk)
    if own.is_stale(base):
        raise CorrectionConflict(conflict_message(own), own.version)
    return own, [s for s in sets if s is not own]


def bump_all(own, others, user, when) -> int:
    """Bump every locked set; the job's own new version is returned (the one the region records)."""
    for other in others:
        other.bump(user, when)
        other.save(update_fields=["version", "updated_by", "updated_at"])
    version = own.bump(user, when)
    own.save()
    return version
