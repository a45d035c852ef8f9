"""Training runs on their own django-q2 queue (workers.choices.TRAINING_QUEUE), with progress and
cooperative cancel. Used by the annotation pages and API (queue, list, cancel) and by the worker.

A training run never shares a worker with clinical analysis: it is queued on the training queue,
which only `qcluster` processes started with Q_CLUSTER_NAME=training take. The loop reports after
every step (progress written at most every PROGRESS_WRITE_SECONDS) and reads the run's cancel flag:
a cancelled run stops between two steps and registers nothing. A finished run is registered as a
research ModelVersion with its held-out evaluation (analysis.promotion decides clinical use).
"""

import logging
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workers.choices import FINAL_TRAINING_STATUSES, TrainingStatus
from workers.models import TrainingRun, TrainingStateError
from workers.queue import enqueue_training

log = logging.getLogger(__name__)

PROGRESS_WRITE_SECONDS = 1.0  # a row write per second at most, whatever the pace of the steps


class TrainingError(Exception):
    """A training run that cannot be cancelled as asked; the message is for the user."""


def do_queue_training(*, group: str, dataset: str, name: str, steps: int, backbone: str, mpp: float,
                      user=None) -> TrainingRun:
    """Record the run and queue it on the training queue once the row is committed."""
    with transaction.atomic():
        run = TrainingRun.objects.create(group=group, dataset=dataset, name=name, steps_total=steps,
                                         backbone=backbone, mpp=mpp, created_by=user)

        def queue():
            task_id = enqueue_training(run.pk, name=name, group=group)
            TrainingRun.objects.filter(pk=run.pk).update(task_id=task_id or "")

        transaction.on_commit(queue)
    return run


def do_cancel_training(run: TrainingRun) -> TrainingRun:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        try:
            run.request_cancel()
        except TrainingStateError as exc:
            raise TrainingError(str(exc)) from None
        run.save()
    return run


def unfinished_run_named(name: str) -> bool:
    """A queued or running run will register this model name."""
    return TrainingRun.objects.filter(name=name).exclude(status__in=FINAL_TRAINING_STATUSES).exists()


def runs_of(group: str):
    return TrainingRun.objects.filter(group=group).select_related("model_version")


class _Progress:
    """The loop's monitor: writes steps, loss and ETA on the run's row; False once cancel is asked."""

    def __init__(self, run_id: int):
        self.run_id, self.written = run_id, float("-inf")

    def __call__(self, report) -> bool:
        now = time.monotonic()
        rows = TrainingRun.objects.filter(pk=self.run_id)
        if now - self.written >= PROGRESS_WRITE_SECONDS or report.step >= report.steps:
            rows.filter(status=TrainingStatus.RUNNING).update(
                steps_done=report.step, loss=report.loss, eta_seconds=report.eta_seconds, progress_at=timezone.now())
            self.written = now
        return not rows.filter(cancel_requested=True).exists()


def run_training(run_id: int) -> str:
    """The training queue's task: train on the run's dataset, then register the model (research)."""
    from analysis import registry
    from analysis.training import TrainingCancelled, train
    from analysis.training_config import TrainConfig

    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.status != TrainingStatus.QUEUED:
            return f"not started: {run.status}"  # cancelled while queued, or a duplicate delivery
        run.mark_running()
        run.save()
    out = Path(settings.MEDIA_ROOT) / "models" / run.name
    config = TrainConfig(out_dir=str(out), sources=(f"folder:{run.dataset}",), name=run.name, steps=run.steps_total,
                         backbone=run.backbone, mpp=run.mpp, crop=128, batch_size=4, progress=False)
    try:
        result = train(config, monitor=_Progress(run.pk))
    except TrainingCancelled as stopped:
        def cancelled(run):
            run.steps_done = stopped.step
            run.mark_cancelled()

        _finish(run_id, cancelled)
        return "cancelled"
    except Exception as exc:  # noqa: BLE001  any failure ends the run with its reason, shown on its page
        log.exception("training %s failed", run.name)
        _finish(run_id, lambda r: r.mark_failed(f"{type(exc).__name__}: {exc}"))
        return "failed"
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.cancel_requested:  # asked during the final evaluation: still nothing registered
            run.mark_cancelled()
            run.save()
            return "cancelled"
        try:
            version = registry.register_checkpoint(result.model_path, run.name, metrics=result.card["metrics"],
                                                   training_data=result.card["training_data"])
        except registry.RegistryError as exc:  # e.g. the name was taken meanwhile
            run.mark_failed(f"not registered: {exc}")
            run.save()
            return "failed"
        run.steps_done = result.steps_done
        run.mark_done(version)
        run.save()
    log.info("trained and registered %s (research) from %s", version.name, run.dataset)
    return version.name


def _finish(run_id: int, change) -> None:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        change(run)
        run.save()


def eta_text(run: TrainingRun) -> str:
    """"about 3 min left" for a running run with a pace; '' otherwise."""
    if run.is_final or run.eta_seconds is None:
        return ""
    return f"about {timedelta(seconds=round(run.eta_seconds))} left"
