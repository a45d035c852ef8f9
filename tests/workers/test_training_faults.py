"""Training runs under faults (issue 19): the loop rides out a short database outage and gives up,
keeping its checkpoint, after training.TRAINING_DB_RETRY_SECONDS; the watchdog (workers.training.
watch_training_runs) resumes a run whose worker died from its checkpoint, or fails it with the reason
the project page shows, and queues again a run whose task was lost. Data: SYNTHETIC.

The outage is injected at the database seam (a connection execute wrapper raising OperationalError
on the progress UPDATE), the worker's death by stopping the loop with an exception no `except
Exception` catches, as SIGKILL leaves it: the row still "running", the checkpoint on disk.
Runs on SQLite and on PostgreSQL (DATABASE_URL)."""

import contextlib
import time

import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from django_q.models import Schedule

from analysis.models import ModelVersion
from analysis.training_checkpoint import CHECKPOINT_NAME
from annotations import dataset
from tests.annotations import client_for
from tests.annotations.test_dataset import accepted_session, make_project
from tests.workers.test_training_runs import folder, project, queued_run  # noqa: F401  (fixtures)
from workers import dbretry, training
from workers.choices import TrainingStatus
from workers.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


class WorkerKilled(BaseException):
    """The worker process stopped mid-run (SIGKILL): nothing of the task's own error handling runs."""


def progress_outage(failing):
    """An execute wrapper failing the progress UPDATE of each step `failing(step)` says, as a
    PostgreSQL restart does (the step's value is the UPDATE's first parameter)."""
    failed, first_failure = [], []

    def wrapper(execute, sql, params, many, context):
        if sql.startswith('UPDATE "workers_trainingrun" SET "steps_done"') and failing(params[0], len(failed)):
            failed.append(params[0])
            first_failure.append(first_failure[0] if first_failure else time.monotonic())
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    wrapper.first_failure = first_failure
    return wrapper, failed


def kill_at(monkeypatch, run, at_step):
    """The run's worker dies when its loop reports `at_step` (once: the resumed attempt runs on); the
    first step each attempt's loop reported is recorded."""
    original, first_steps = training._Progress.__call__, {}

    def hooked(self, report):
        first_steps.setdefault(self.attempt, report.first_step)
        if self.run_id == run.pk and report.step == at_step and self.attempt == 1:
            raise WorkerKilled
        return original(self, report)

    monkeypatch.setattr(training._Progress, "__call__", hooked)
    return first_steps


def go_stale(settings):
    """Let the running run's last report age past the (shortened) staleness, in real time."""
    settings.PDL1_TRAINING_STALE_SECONDS = 1
    time.sleep(1.2)


@pytest.fixture
def fast_progress(monkeypatch):
    monkeypatch.setattr(training, "PROGRESS_WRITE_SECONDS", 0.0)  # every step's progress is written
    monkeypatch.setattr(dbretry, "FIRST_DELAY", 0.05)


@pytest.mark.parametrize("outages", [1, 2])
def test_training_finishes_through_short_database_outages(project, folder, fast_progress, outages):
    run = queued_run(project, folder, name=f"outage-{outages}", steps=4)
    wrapper, failed = progress_outage(lambda step, so_far: step == 2 and so_far < outages)
    with connection.execute_wrapper(wrapper):
        assert training.run_training(run.pk) == run.name
    assert failed == [2] * outages  # the write of step 2 failed that many times, then went through
    run.refresh_from_db()
    assert run.status == TrainingStatus.DONE and run.steps_done == 4 and run.error == ""
    assert ModelVersion.objects.get(name=run.name) == run.model_version


def test_training_gives_up_after_the_retry_time_keeping_its_checkpoint(project, folder, fast_progress, monkeypatch):
    monkeypatch.setattr(training, "TRAINING_DB_RETRY_SECONDS", 1)
    run = queued_run(project, folder, name="outage-long", steps=50)
    wrapper, failed = progress_outage(lambda step, so_far: step >= 3)
    with connection.execute_wrapper(wrapper):
        assert training.run_training(run.pk) == "failed"
    outage = time.monotonic() - wrapper.first_failure[0]
    assert 1 <= outage < 15 and len(failed) >= 2 and set(failed) == {3}  # retried with back-off, then gave up
    run.refresh_from_db()
    assert run.status == TrainingStatus.FAILED and run.steps_done == 2 and run.finished_at is not None
    assert run.error.startswith("Stopped at step 3: the database was unreachable for more than 1 s while writing "
                                "the progress of step 3 (OperationalError: server closed the connection")
    assert (training.run_folder(run) / CHECKPOINT_NAME).is_file()  # the 3 steps done are kept
    assert not ModelVersion.objects.filter(name=run.name).exists()


def test_watchdog_resumes_a_run_whose_worker_died_from_its_checkpoint(project, folder, monkeypatch, settings,
                                                                      fast_progress):
    monkeypatch.setattr(training, "CHECKPOINT_EVERY", 5)
    run = queued_run(project, folder, name="killed-run", steps=12)
    first_steps = kill_at(monkeypatch, run, at_step=7)
    with pytest.raises(WorkerKilled):
        training.run_training(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingStatus.RUNNING and run.attempt == 1  # what a killed worker leaves
    assert training.watch_training_runs()["resumed"] == []  # it reported a moment ago: not stale yet

    go_stale(settings)
    # Queued again on the (synchronous, in tests) training queue: the resumed attempt runs to the end.
    assert training.watch_training_runs()["resumed"] == [run.pk]
    run.refresh_from_db()
    assert first_steps == {1: 0, 2: 5}  # the second attempt started from the checkpoint at step 5
    assert run.status == TrainingStatus.DONE and run.attempt == 2 and run.steps_done == 12
    assert run.model_version == ModelVersion.objects.get(name="killed-run")
    assert run.error.startswith("The training worker stopped reporting at step 6 of 12 (last report ")
    assert run.error.endswith("; resumed from its last checkpoint (attempt 2 of 3).")


def test_watchdog_fails_a_lost_run_without_checkpoint_and_it_can_be_trained_again(project, folder, monkeypatch,
                                                                                   settings, personas,
                                                                                   fast_progress):
    run = queued_run(project, folder, name="lost-early", steps=50)
    kill_at(monkeypatch, run, at_step=2)
    with pytest.raises(WorkerKilled):
        training.run_training(run.pk)
    go_stale(settings)
    assert training.watch_training_runs()["failed"] == [run.pk]
    run.refresh_from_db()
    assert run.status == TrainingStatus.FAILED and run.finished_at is not None
    assert run.error.startswith("The training worker stopped reporting at step 1 of 50 (last report ")
    assert run.error.endswith(", before its first checkpoint: nothing to resume from. Train again.")
    page = client_for(personas["pathologist"]).get(f"/annotate/projects/{project.pk}/").content.decode()
    assert "failed: The training worker stopped reporting at step 1 of 50" in page
    # The name is free again, and a new run under it does not trip over the lost run's folder.
    assert dataset.check_training_request("lost-early", 3, "resnet18") == ("lost-early", 3, "resnet18")
    again = queued_run(project, folder, name="lost-early", steps=3)
    assert training.run_training(again.pk) == "lost-early"
    assert training.watch_training_runs() == {"resumed": [], "failed": [], "cancelled": [], "requeued": []}


def test_watchdog_gives_up_after_the_attempts_and_cancels_a_run_being_cancelled(project, folder, settings):
    worn = queued_run(project, folder, name="worn-out", steps=50)
    cancelling = queued_run(project, folder, name="cancelling", steps=50, cancel_requested=True)
    for run, attempt in ((worn, 3), (cancelling, 1)):
        TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.RUNNING, attempt=attempt, steps_done=30,
                                                     started_at=timezone.now(), progress_at=timezone.now())
        training.run_folder(run).mkdir(parents=True)
        (training.run_folder(run) / CHECKPOINT_NAME).write_bytes(b"a checkpoint")  # not read: resumed neither
    TrainingRun.objects.filter(pk=cancelling.pk).update(progress_at=None)  # started before progress_at was written
    go_stale(settings)
    assert training.watch_training_runs() == {"resumed": [], "failed": [worn.pk], "cancelled": [cancelling.pk],
                                              "requeued": []}
    worn.refresh_from_db()
    cancelling.refresh_from_db()
    assert worn.status == TrainingStatus.FAILED and "Its worker stopped 3 times, so it is not resumed again" in worn.error
    assert cancelling.status == TrainingStatus.CANCELLED and cancelling.error.endswith(
        "it was being cancelled: nothing registered.")


def test_watchdog_queues_again_a_queued_run_whose_task_was_lost(project, folder, settings):
    run = queued_run(project, folder, name="lost-task", steps=3)  # queued, but its task never reached a worker
    assert training.watch_training_runs()["requeued"] == []  # queued a moment ago: may still be waiting
    go_stale(settings)
    assert training.watch_training_runs()["requeued"] == [run.pk]
    run.refresh_from_db()
    assert run.status == TrainingStatus.DONE and run.attempt == 1


@pytest.mark.django_db  # not transactional: the migration's rows are still there
def test_the_watchdog_is_scheduled_every_minute():
    schedule = Schedule.objects.get(func="workers.training.watch_training_runs")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats, schedule.cluster) == ("I", 1, -1, None)


def test_a_worker_whose_run_went_to_another_attempt_stops_without_writing(project, folder, monkeypatch,
                                                                          fast_progress):
    run = queued_run(project, folder, name="slow-not-dead", steps=50)
    original = training._Progress.__call__

    def hooked(self, report):
        if report.step == 2:  # meanwhile the watchdog gave the run to another worker, which took it
            TrainingRun.objects.filter(pk=run.pk).update(attempt=2, steps_done=0)
        return original(self, report)

    monkeypatch.setattr(training._Progress, "__call__", hooked)
    assert training.run_training(run.pk) == "superseded"
    run.refresh_from_db()
    assert (run.status, run.attempt, run.steps_done, run.finished_at) == (TrainingStatus.RUNNING, 2, 0, None)
    assert not ModelVersion.objects.filter(name=run.name).exists()


def test_a_failed_run_is_trained_again_from_its_row(personas, synthetic_slide, folder):
    project = make_project(personas)
    accepted_session(personas, project, synthetic_slide, (100, 200, 256, 256),
                     [[150, 250, "positive"], [300, 400, "negative"]])
    lost = queued_run(project, folder, name="again", steps=2, status=TrainingStatus.FAILED,
                      error="The training worker stopped reporting at step 1 of 2")
    running = queued_run(project, folder, name="busy", steps=2, status=TrainingStatus.RUNNING)
    client = client_for(personas["pathologist"])
    page = client.get(f"/annotate/projects/{project.pk}/").content.decode()
    form = (f'<form method="post" action="/annotate/projects/{project.pk}/train/" class="train-again">',
            '<input type="hidden" name="name" value="again"><input type="hidden" name="steps" value="2">'
            '<input type="hidden" name="backbone" value="resnet18"><button type="submit"')
    assert form[0] in page and form[1] in page and page.count('class="train-again"') == 1  # not for the running one
    page = client.post(f"/annotate/projects/{project.pk}/train/", {"name": "again", "steps": "2",
                                                                   "backbone": "resnet18"}, follow=True).content.decode()
    assert "Training of model &#x27;again&#x27; queued" in page
    again = TrainingRun.objects.filter(name="again").exclude(pk=lost.pk).get()
    assert again.status == TrainingStatus.DONE and again.model_version.name == "again"  # ran inline in tests
    assert TrainingRun.objects.get(pk=lost.pk).status == TrainingStatus.FAILED and running.pk != again.pk


class _Stop(Exception):
    pass


@pytest.mark.parametrize("heartbeat", [True, False])
def test_a_live_worker_busy_longer_than_the_staleness_is_not_taken_for_lost(project, folder, settings, monkeypatch,
                                                                            heartbeat):
    """One stretch of work (loading the dataset, the final evaluation) longer than TRAINING_STALE_SECONDS:
    the worker's heartbeat thread keeps its run alive for the watchdog; without it (the control) the
    same run is taken for lost."""
    settings.PDL1_TRAINING_STALE_SECONDS = 1.0
    if not heartbeat:
        monkeypatch.setattr(training, "_heartbeat", lambda run_id, attempt: contextlib.nullcontext())
    run = queued_run(project, folder, name=f"slow-{heartbeat}", steps=3)
    seen = {}

    def slow_train(config, monitor):
        time.sleep(2.0)  # twice the staleness, without a step to report
        seen.update(training.watch_training_runs())
        raise _Stop

    monkeypatch.setattr("analysis.training.train", slow_train)
    assert training.run_training(run.pk) == "failed"  # _Stop ends this run: what matters is what the watchdog saw
    lost = seen["resumed"] + seen["failed"]
    assert (run.pk in lost) is not heartbeat, seen
