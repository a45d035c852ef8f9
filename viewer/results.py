"""The viewer's side of cases.results: a job's corrected scores, points and regions for reports."""

from __future__ import annotations

import numpy as np

from viewer.geometry import region_pairs
from viewer.human_layer import correction_state
from viewer.human_layer import correction_version as _correction_version
from viewer.overlay import corrected_points as _corrected_points
from viewer.scores import job_scores
from viewer.stores import job_store


def scores(job) -> dict:
    return job_scores(job)


def correction_version(job) -> int:
    return _correction_version(job)


def corrected_points(job) -> tuple[np.ndarray, np.ndarray]:
    return _corrected_points(job_store(job), correction_state(job))


def regions(job) -> list[tuple[bool, list]]:
    from viewer.models import Region

    return region_pairs(Region.objects.filter(slide_id=job.slide_id, deleted_at__isnull=True).only("kind", "vertices"))


def lock_for_signing(job) -> None:
    """The job's correction set, row-locked (cases.reports.do_sign): every correction save locks it, and
    every region save locks the sets of every job on the slide, so neither can commit between the check
    that the draft still states what the viewer shows and the signed documents drawn from that state."""
    from viewer.models import CorrectionSet

    CorrectionSet.objects.get_or_create(job_id=job.pk)
    list(CorrectionSet.objects.select_for_update(of=("self",)).filter(job_id=job.pk))
