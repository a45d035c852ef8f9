"""Training runs on their own django-q2 queue (workers.choices.TRAINING_QUEUE), with progress and
cooperative cancel. Used by the annotation pages and API (queue, list, cancel) and by the worker.

A training run never shares a worker with clinical analysis: it is queued on the training queue,
which only `qcluster` processes started with Q_CLUSTER_NAME=training take. The loop reports after
every step (progress written at most every PROGRESS_WRITE_SECONDS) and reads the run's cancel flag:
a cancelled run stops between two steps and registers nothing. A finished run is registered as a
research ModelVersion with its held-out evaluation (analysis.promotion decides clinical use).

Faults (issue 19): the loop's database reads and writes ride out a short outage (a PostgreSQL
restart) by reconnecting with back-off (_db_retry); a worker that dies mid-run (SIGKILL, out of
memory, the machine restarting) leaves a run that stops reporting, which watch_training_runs
resumes from its checkpoint or fails with the reason.
"""

import contextlib
import logging
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

from pdl1site.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from workers.choices import FINAL_TRAINING_STATUSES, TrainingStatus
from workers.dbretry import DatabaseLost, retry_while_database_down
from workers.models import TrainingRun, TrainingStateError
from workers.queue import enqueue_training

log = logging.getLogger(__name__)

PROGRESS_WRITE_SECONDS = 1.0  # a row write per second at most, whatever the pace of the steps
CHECKPOINT_EVERY = 100  # steps between resumable checkpoints: a lost worker costs at most this many
# The loop's database reads and writes ride out an outage (a PostgreSQL restart) this long, reconnecting
# with back-off (workers.dbretry), before it stops, keeping its checkpoint; well under TRAINING_STALE_SECONDS.
TRAINING_DB_RETRY_SECONDS = 120


class TrainingError(Exception):
    """A training run that cannot be cancelled as asked; the message is for the user."""


def _db_retry(call, what: str):
    """`call()`, a short read or write of the training task or a whole transaction of it, tried again
    through a database outage for TRAINING_DB_RETRY_SECONDS (workers.dbretry); then DatabaseLost.
    Meanwhile the loop waits between two steps: nothing it computed is lost to a short outage."""
    return retry_while_database_down(call, what, TRAINING_DB_RETRY_SECONDS)


def run_folder(run: TrainingRun) -> Path:
    """Where the run writes its checkpoint, model and card: its own folder, so a run trained again
    under the same name never finds another run's checkpoint, and a resumed run finds its own."""
    return Path(settings.MEDIA_ROOT) / "models" / run.name / f"run-{run.pk}"


def stored_dataset(folder) -> str:
    """How a run records its dataset folder: relative to MEDIA_ROOT when it lies there (an export,
    MEDIA_ROOT/datasets/<name>), so a restore into another media folder keeps the run's dataset; a folder
    outside the media storage as the absolute path it is."""
    folder, media = Path(os.path.abspath(folder)), Path(os.path.abspath(settings.MEDIA_ROOT))
    for inside, root in ((folder, media), (folder.resolve(), media.resolve())):  # as given, then without links
        if inside.is_relative_to(root) and inside != root:
            return inside.relative_to(root).as_posix()
    return str(folder)


def dataset_folder(run: TrainingRun) -> Path:
    """The run's dataset folder now: a relative path under the current MEDIA_ROOT. Runs queued before
    that recorded the absolute path under the MEDIA_ROOT of the time: when that path is gone (the media
    were restored elsewhere), the export of the same name under the current MEDIA_ROOT/datasets."""
    media = Path(settings.MEDIA_ROOT)
    recorded = Path(run.dataset)
    if not recorded.is_absolute():
        return media / recorded
    if not recorded.exists() and recorded.parent.name == "datasets":
        moved = media / "datasets" / recorded.name
        if moved.is_dir():
            return moved
    return recorded


def do_queue_training(*, group: str, dataset: str, name: str, steps: int, backbone: str, mpp: float,
                      user=None) -> TrainingRun:
    """Record the run and queue it on the training queue once the row is committed; TrainingError when a
    run of that name is queued or running already (one_unfinished_training_run_per_name), or when the
    dataset folder does not say which marker its fields are stained for: the model registered from it
    takes that marker (analysis.datasets.source_marker), and one of unknown marker could never be promoted."""
    from django.db import IntegrityError

    from analysis.datasets import MANIFEST_MARKER_KEY, DatasetError, folder_marker

    try:
        folder_marker(dataset)
    except DatasetError as exc:  # the answer names the folder, not the server's path (logged)
        log.warning("training %s not queued: %s", name, exc)
        raise TrainingError(f"not queued: the manifest.json of dataset folder {Path(dataset).name!r} is unreadable "
                            f"or records no valid {MANIFEST_MARKER_KEY!r} (what its fields are stained for): export "
                            "the dataset again") from None
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: the refusal leaves the caller's transaction usable
                run = TrainingRun.objects.create(group=group, dataset=stored_dataset(dataset), name=name,
                                                 steps_total=steps,
                                                 backbone=backbone, mpp=mpp, created_by=user)
        except IntegrityError:
            raise TrainingError(f"a training run named {name!r} is queued or running already") from None

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
    """The loop's monitor: writes steps, loss and ETA on the run's row; False once cancel is asked, once
    the run is no longer this attempt's (the watchdog gave it to another worker, or failed it), or
    once the database stayed unreachable past TRAINING_DB_RETRY_SECONDS (`lost` says so; the loop
    then keeps a resumable checkpoint)."""

    def __init__(self, run_id: int, attempt: int):
        self.run_id, self.attempt, self.written = run_id, attempt, float("-inf")
        self.superseded, self.lost = False, None

    def _rows(self):
        return TrainingRun.objects.filter(pk=self.run_id, attempt=self.attempt, status=TrainingStatus.RUNNING)

    def __call__(self, report) -> bool:
        now = time.monotonic()
        try:
            if now - self.written >= PROGRESS_WRITE_SECONDS or report.step >= report.steps:
                _db_retry(lambda: self._rows().update(steps_done=report.step, loss=report.loss,
                                                      eta_seconds=report.eta_seconds, progress_at=timezone.now()),
                          f"writing the progress of step {report.step}")
                self.written = now
            cancel = _db_retry(lambda: self._rows().values_list("cancel_requested", flat=True).first(),
                               "reading the cancel flag")
        except DatabaseLost as exc:
            self.lost = exc
            return False
        if cancel is None:
            self.superseded = True
            return False
        return not cancel


def run_training(run_id: int) -> str:
    """The training queue's task: train on the run's dataset, then register the model (research).
    A run queued again by the watchdog resumes from the checkpoint in its folder (run_folder)."""
    from analysis.training import TrainingCancelled, train
    from analysis.training_config import TrainConfig

    def start():
        with transaction.atomic():
            run = TrainingRun.objects.select_for_update().get(pk=run_id)
            if run.status != TrainingStatus.QUEUED:
                return run, False  # cancelled while queued, or a duplicate delivery
            run.mark_running()
            run.save()
            return run, True

    # Unreachable past the retry time: the task fails, the run stays queued and the watchdog queues it again.
    run, started = _db_retry(start, "starting the run")
    if not started:
        return f"not started: {run.status}"
    config = TrainConfig(out_dir=str(run_folder(run)), sources=(f"folder:{dataset_folder(run)}",), name=run.name,
                         steps=run.steps_total, backbone=run.backbone, mpp=run.mpp, crop=128, batch_size=4,
                         progress=False, resume=True, checkpoint_every=CHECKPOINT_EVERY)
    monitor = _Progress(run.pk, run.attempt)
    try:
        with _heartbeat(run.pk, run.attempt):
            result = train(config, monitor=monitor)
    except TrainingCancelled as stopped:
        if monitor.lost is not None:
            log.error("training %s stopped at step %s: %s", run.name, stopped.step, monitor.lost)
            _finish(run, lambda r: r.mark_failed(
                f"Stopped at step {stopped.step}: {monitor.lost}. Its checkpoint is kept; train again."))
            return "failed"
        if monitor.superseded:
            log.warning("training %s (attempt %s) stopped at step %s: the run is no longer this worker's",
                        run.name, run.attempt, stopped.step)
            return "superseded"

        def cancelled(run):
            run.steps_done = stopped.step
            run.mark_cancelled()

        _finish(run, cancelled)
        return "cancelled"
    except Exception as exc:  # noqa: BLE001  any failure ends the run with its reason, shown on its page
        log.exception("training %s failed", run.name)
        _finish(run, lambda r: r.mark_failed(f"{type(exc).__name__}: {exc}"))
        return "failed"
    return _db_retry(lambda: _register(run, result), "registering the trained model")


@contextlib.contextmanager
def _heartbeat(run_id: int, attempt: int):
    """While the worker computes (loading the dataset, a slow step, the final held-out evaluation), it
    marks its run alive every quarter of TRAINING_STALE_SECONDS from a thread of its own, so the
    watchdog takes a run for lost only when its worker is gone (killed, out of memory, the machine
    restarted: the thread dies with it), never because one stretch of work outlasted the staleness."""
    stop = threading.Event()
    interval = max(0.5, settings.PDL1_TRAINING_STALE_SECONDS / 4)

    def beat():
        try:
            while not stop.wait(interval):
                try:
                    TrainingRun.objects.filter(pk=run_id, attempt=attempt, status=TrainingStatus.RUNNING).update(
                        progress_at=timezone.now())
                except DatabaseError as exc:  # an outage: the next beat tries again on a new connection
                    log.warning("training %s: heartbeat not written (%s)", run_id, exc)
                    with contextlib.suppress(DatabaseError):
                        connection.close()
        finally:
            with contextlib.suppress(DatabaseError):
                connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"training-heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def _register(run: TrainingRun, result) -> str:
    from analysis import registry

    with transaction.atomic():
        row = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if row.attempt != run.attempt or row.status != TrainingStatus.RUNNING:
            return "superseded"
        if row.cancel_requested:  # asked during the final evaluation: still nothing registered
            row.mark_cancelled()
            row.save()
            return "cancelled"
        try:
            version = registry.register_checkpoint(result.model_path, row.name, metrics=result.card["metrics"],
                                                   training_data=result.card["training_data"])
        except registry.RegistryError as exc:  # e.g. the name was taken meanwhile
            row.mark_failed(f"not registered: {exc}")
            row.save()
            return "failed"
        row.steps_done = result.steps_done
        row.mark_done(version)
        row.save()
    log.info("trained and registered %s (research) from %s", version.name, row.dataset)
    return version.name


def _finish(run: TrainingRun, change) -> None:
    """Apply `change` to the run's row, unless another attempt took it over or it has ended meanwhile.
    Unreachable database past the retry time: DatabaseLost (the task fails; the watchdog ends the run)."""
    def apply():
        with transaction.atomic():
            row = TrainingRun.objects.select_for_update().get(pk=run.pk)
            if row.attempt == run.attempt and not row.is_final:
                change(row)
                row.save()

    _db_retry(apply, "recording the end of the run")


def watch_training_runs() -> dict:
    """The training watchdog (a django-q2 schedule, every minute; workers/migrations/0003).

    A running run whose worker stopped reporting for TRAINING_STALE_SECONDS lost its worker: the
    process was killed (SIGKILL, out of memory, django-q's TRAINING_TIMEOUT_SECONDS) or the machine
    restarted. Its row would say "Training" forever, and its name stays taken. The worker's liveness
    is read from the run's own progress_at (written at its start, at every step and by the worker's
    heartbeat thread while it computes), not from
    django-q: the Redis broker forgets a task once a worker took it, so "task alive" cannot be asked.
    What an annotator and an engineer expect, and what happens:

    - the run continues without anyone's action when it can: with a checkpoint in its folder (one
      every CHECKPOINT_EVERY steps) it is queued again and resumes there, losing at most the steps since; the
      project page shows "Queued to resume from its last checkpoint" and why;
    - it ends with a reason it can act on when it cannot: no checkpoint yet (killed before its first
      one), or its worker died TRAINING_MAX_ATTEMPTS times (the run itself probably kills it, e.g.
      memory: resuming again would only repeat that) -> failed, with the step it reached, when it last
      reported and what to do; "Train a new model" works again at once, even under the same name;
    - a run whose cancel was asked is cancelled (nothing registered), never resumed;
    - a queued run that no worker took for TRAINING_STALE_SECONDS while none is running (a Redis
      restart lost its task, or the broker was down when it was queued) is queued again; a
      duplicate delivery does nothing (run_training starts only a queued run).

    A worker that was only slow, not dead, finds its run given to another attempt at its next step
    and stops there without writing (the loop's writes carry the attempt). Returns what it did.
    """
    from analysis.training_checkpoint import CHECKPOINT_NAME

    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.PDL1_TRAINING_STALE_SECONDS)
    done = {"resumed": [], "failed": [], "cancelled": [], "requeued": []}
    stale = TrainingRun.objects.filter(status=TrainingStatus.RUNNING).filter(
        Q(progress_at__lt=cutoff) | Q(progress_at__isnull=True, started_at__lt=cutoff))
    with transaction.atomic():
        for run in stale.select_for_update():
            since = timezone.localtime(run.progress_at or run.started_at or run.created_at).strftime("%Y-%m-%d %H:%M %Z")
            lost = (f"The training worker stopped reporting at step {run.steps_done} of {run.steps_total} "
                    f"(last report {since}: the worker was killed, ran out of memory or time, or the machine restarted)")
            if run.cancel_requested:
                run.mark_cancelled()
                run.error = f"{lost}; it was being cancelled: nothing registered."
                done["cancelled"].append(run.pk)
            elif run.attempt >= settings.PDL1_TRAINING_MAX_ATTEMPTS:
                run.mark_failed(f"{lost}. Its worker stopped {run.attempt} times, so it is not resumed again: "
                                "check the training worker's log (memory?), then train again.")
                done["failed"].append(run.pk)
            elif (run_folder(run) / CHECKPOINT_NAME).is_file():
                run.mark_lost(f"{lost}; resumed from its last checkpoint (attempt {run.attempt + 1} of "
                              f"{settings.PDL1_TRAINING_MAX_ATTEMPTS}).")
                done["resumed"].append(run.pk)
            else:
                run.mark_failed(f"{lost}, before its first checkpoint: nothing to resume from. Train again.")
                done["failed"].append(run.pk)
            run.save()
        waiting = TrainingRun.objects.filter(status=TrainingStatus.QUEUED).filter(
            Q(progress_at__lt=cutoff) | Q(progress_at__isnull=True, created_at__lt=cutoff))
        if not TrainingRun.objects.filter(status=TrainingStatus.RUNNING).exists():
            for run in waiting.select_for_update():
                run.progress_at = now  # waits another TRAINING_STALE_SECONDS before the next try
                run.save(update_fields=["progress_at"])
                done["requeued"].append(run.pk)
        again = [*done["resumed"], *done["requeued"]]
        transaction.on_commit(lambda: [_queue_again(pk) for pk in again])
    if any(done.values()):
        log.warning("training watchdog: %s", done)
    return done


def _queue_again(run_id: int) -> None:
    run = TrainingRun.objects.get(pk=run_id)
    try:
        task_id = enqueue_training(run.pk, name=run.name, group=run.group)
    except Exception:  # noqa: BLE001  broker unreachable (Redis restarting): the next watchdog round tries again
        log.warning("training watchdog: could not queue run %s again", run_id, exc_info=True)
        return
    TrainingRun.objects.filter(pk=run_id).update(task_id=task_id or "")


def eta_text(run: TrainingRun) -> str:
    """"about 3 min left" for a running run with a pace; '' otherwise."""
    if run.is_final or run.eta_seconds is None:
        return ""
    return f"about {timedelta(seconds=round(run.eta_seconds))} left"
