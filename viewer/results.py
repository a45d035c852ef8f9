"""The viewer's side of cases.results: a job's corrected scores, points and regions for reports."""

from __future__ import annotations

import numpy as np

from viewer import services
from viewer.choices import INCLUDE_REGION_KINDS


def scores(job) -> dict:
    return services.job_scores(job)


def correction_version(job) -> int:
    return services.correction_version(job)


def corrected_points(job) -> tuple[np.ndarray, np.ndarray]:
    return services.corrected_points(services.job_store(job), services.correction_state(job))


def regions(job) -> list[tuple[bool, list]]:
    from viewer.models import Region

    return [(r.kind in INCLUDE_REGION_KINDS, r.vertices)
            for r in Region.objects.filter(job=job, deleted_at__isnull=True).only("kind", "vertices")]
