"""Progress events: each committed change of a job goes to the Channels groups of the job and its
slide. Sent only after commit, so a listener never sees a state that was rolled back."""

import logging

from asgiref.sync import async_to_sync
from django.db import transaction

log = logging.getLogger(__name__)


def job_group(job_id: int) -> str:
    return f"job-{job_id}"


def slide_group(slide_id: int) -> str:
    return f"slide-{slide_id}"


BEFORE_REVIEW = ("detections before review (whole slide, uncorrected): the merge's counts, no regions or "
                 "corrections applied; not a score. The TPS, its category and adequacy are the job's scores: "
                 "GET /api/viewer/jobs/{job}/corrections/ (scores), as the viewer and a report state them")


def detections_before_review(job) -> dict | None:
    """The merge's summary less its TPS, saying what it is (None before the merge). The one TPS of a job
    is its scores' (viewer.scores.job_scores: corrections applied, counted inside the drawn regions); the
    merge's whole-slide uncorrected TPS used to be served beside it as "summary", unlabelled."""
    summary = job.summary or {}
    if not summary:
        return None
    return {**{k: v for k, v in summary.items() if k != "tps"}, "note": BEFORE_REVIEW.format(job=job.pk)}


def job_state(job) -> dict:
    return {
        "job": job.pk,
        "slide": job.slide_id,
        "status": job.status,
        "tiles_done": job.tiles_done,
        "tiles_total": job.tiles_total,
        "batches_done": job.batches_done,
        "batches_total": job.batches_total,
        "error": job.error,
        "detections_before_review": detections_before_review(job),
    }


def emit_job_progress(job, new_points: dict | None = None) -> None:
    """Queue an event for after the current transaction commits (at once outside one)."""
    event = {"type": "job.progress", "state": job_state(job)}
    if new_points:
        event["points"] = new_points
    groups = [job_group(job.pk), slide_group(job.slide_id)]
    transaction.on_commit(lambda: _send(groups, event))


def _send(groups, event) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for group in groups:
            async_to_sync(layer.group_send)(group, event)
    except Exception:  # progress must never break the pipeline; the job row stays the truth
        log.exception("progress event for %s not delivered", groups)
