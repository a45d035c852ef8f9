"""Starting, cancelling and retrying analysis jobs: used by pages, the API and analyze_slide."""

from django.db import transaction

from analysis import registry
from analysis.choices import CLASSIC_DETECTOR
from analysis.models import AnalysisJob, JobStateError, ModelVersion
from workers.progress import emit_job_progress
from workers.queue import enqueue

ALLOWED_PARAMETERS = {"tile_px", "overlap_px", "batch_size", "working_mpp", "compartment", "mpp",
                      "dedupe_radius_um"}


class JobError(Exception):
    """A job that cannot be started, cancelled or retried as asked; the message is for the user."""


def check_parameters(parameters: dict) -> dict:
    unknown = set(parameters) - ALLOWED_PARAMETERS
    if unknown:
        raise JobError(f"unknown parameters: {', '.join(sorted(unknown))}")
    checked = {}
    for key, value in parameters.items():
        if key == "compartment":
            if value not in ("membrane", "nucleus"):
                raise JobError("compartment must be membrane or nucleus")
            checked[key] = value
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise JobError(f"{key} must be a number") from None
        if not number > 0 or number != number or number == float("inf"):
            raise JobError(f"{key} must be a positive number")
        checked[key] = int(number) if key in ("tile_px", "overlap_px", "batch_size") else number
    if checked.get("tile_px", 512) < 64 or checked.get("overlap_px", 64) * 2 >= checked.get("tile_px", 512):
        raise JobError("tile_px must be at least 64 and more than twice overlap_px")
    return checked


def do_start_job(slide, *, user=None, detector: str | None = None, parameters: dict | None = None) -> AnalysisJob:
    parameters = check_parameters(parameters or {})
    if slide.mpp_x is None and "mpp" not in parameters:
        raise JobError("the slide has no resolution (mpp): set it on the slide, or give mpp")
    indication = slide.case.indication if slide.case_id else None
    name = detector or registry.default_detector_name(indication, slide.marker)
    version = None
    if name != CLASSIC_DETECTOR:
        version = ModelVersion.objects.filter(name=name).first()
        try:
            registry.resolve_detector_path(name)
        except registry.UnknownDetector as exc:
            raise JobError(str(exc)) from None
    with transaction.atomic():
        job = AnalysisJob.objects.create(slide=slide, detector=name, model_version=version, parameters=parameters,
                                         created_by=user)
        emit_job_progress(job)
        transaction.on_commit(lambda: enqueue("workers.tasks.split_job", job.pk))
    return job


def do_cancel_job(job: AnalysisJob) -> AnalysisJob:
    """Remaining batches see the cancelled state and stop without detecting."""
    with transaction.atomic():
        job = AnalysisJob.objects.select_for_update().get(pk=job.pk)
        try:
            job.cancel()
        except JobStateError as exc:
            raise JobError(str(exc)) from None
        job.save()
        emit_job_progress(job)
    return job


def do_retry_job(job: AnalysisJob) -> AnalysisJob:
    with transaction.atomic():
        job = AnalysisJob.objects.select_for_update().get(pk=job.pk)
        try:
            job.reset_for_retry()
        except JobStateError as exc:
            raise JobError(str(exc)) from None
        job.save()
        emit_job_progress(job)
        transaction.on_commit(lambda: enqueue("workers.tasks.split_job", job.pk))
    return job
