"""Job progress for the viewer: the state workers report, with an estimate of the seconds left."""

from __future__ import annotations

from django.utils import timezone

from analysis.choices import FINAL_JOB_STATUSES, JobStatus


def estimate_eta(status: str, tiles_done: int, tiles_total: int, elapsed_s: float | None) -> float | None:
    """Seconds left: linear in tiles (the detect stage dominates); 0 when final, None when unknown."""
    if status in FINAL_JOB_STATUSES:
        return 0.0
    if status != JobStatus.RUNNING or not tiles_total or not tiles_done or elapsed_s is None or elapsed_s < 0:
        return None
    left = max(tiles_total - tiles_done, 0)
    return round(elapsed_s * left / tiles_done, 1)


def job_eta(job, state: dict | None = None, now=None) -> float | None:
    state = state or {}
    status = state.get("status", job.status)
    elapsed = None
    if job.started_at is not None:
        elapsed = ((now or timezone.now()) - job.started_at).total_seconds()
    return estimate_eta(status, state.get("tiles_done", job.tiles_done), state.get("tiles_total", job.tiles_total),
                        elapsed)


def job_state_with_eta(job) -> dict:
    from workers.progress import job_state

    state = job_state(job)
    return {**state, "eta_s": job_eta(job, state)}
