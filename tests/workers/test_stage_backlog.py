"""A split or merge waiting in a busy queue is not lost: only a start whose worker went silent counts
towards BATCH_MAX_ATTEMPTS (50 slides queued at once with one worker kept a merge waiting for hours, and
the watchdog failed the job although every batch was computed). SYNTHETIC slide."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from analysis.choices import JobStatus
from analysis.models import AnalysisJob
from workers import queue, tasks
from workers.services import do_start_job

pytestmark = pytest.mark.django_db(transaction=True)
PARAMS = {"batch_size": 4, "tile_px": 256}


def run_until(pending, func):
    while pending and pending[0][0] != func:
        queue.run(*pending.pop(0))


START = timezone.now


def later(monkeypatch, settings, deadlines: float):
    """The clock `deadlines` leases after the real now."""
    moment = START() + timedelta(seconds=deadlines * settings.PDL1_BATCH_DEADLINE_SECONDS)
    monkeypatch.setattr(timezone, "now", lambda: moment)


@override_settings(PDL1_BATCH_MAX_ATTEMPTS=3)
def test_a_merge_waiting_behind_a_backlog_is_queued_again_but_never_failed(synthetic_slide, monkeypatch, settings):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        run_until(pending, "workers.tasks.merge_job")
        merge_task = pending.pop(0)  # waits behind other jobs' tasks: not lost
        for k in range(1, 6):  # the watchdog runs every minute while the merge waits
            later(monkeypatch, settings, k + 0.01)
            assert tasks.requeue_overdue_batches() == 0
            assert pending == [merge_task]  # queued again (its task may have been lost), not counted
            pending.clear()
        monkeypatch.undo()
        queue.run(*merge_task)  # the original finally reaches a worker
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    assert job.stage_deadline is None


def test_a_stage_not_taken_is_queued_again_at_most_once_per_lease(synthetic_slide, monkeypatch, settings):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        pending.clear()
        later(monkeypatch, settings, 1.01)
        tasks.requeue_lost_stages()
        later(monkeypatch, settings, 1.5)  # the watchdog again within the new lease
        tasks.requeue_lost_stages()
        assert pending == [("workers.tasks.split_job", (job.pk,))]
    job.refresh_from_db()
    assert job.stage_attempts == 0  # no worker took it yet


def test_a_duplicate_delivery_while_a_worker_runs_the_stage_does_nothing(synthetic_slide, monkeypatch):
    from workers import pipeline

    real, calls = pipeline.plan_job, []

    def plan_with_a_duplicate(job):
        calls.append(job.pk)
        if len(calls) == 1:
            with monkeypatch.context() as other_worker:
                other_worker.setattr(tasks, "_own_stages", set())
                queue.run("workers.tasks.split_job", (job.pk,))  # another worker gets a copy meanwhile
        return real(job)

    monkeypatch.setattr(pipeline, "plan_job", plan_with_a_duplicate)
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))
    job.refresh_from_db()
    assert calls == [job.pk] and job.status == JobStatus.RUNNING


@override_settings(PDL1_BATCH_MAX_ATTEMPTS=2)
def test_a_merge_that_started_and_went_silent_counts_and_a_later_start_finishes(synthetic_slide, monkeypatch):
    monkeypatch.setattr(tasks, "_own_stages", set())
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        run_until(pending, "workers.tasks.merge_job")
        merge_task = pending.pop(0)

        class Killed(BaseException):
            pass

        def killed(*args):
            raise Killed

        with monkeypatch.context() as m:
            m.setattr("workers.pipeline.merge_job", killed)
            with pytest.raises(Killed):
                queue.run(*merge_task)
        AnalysisJob.objects.filter(pk=job.pk).update(stage_deadline=timezone.now() - timedelta(seconds=1))
        assert tasks.requeue_lost_stages() == 1
        job.refresh_from_db()
        assert job.stage_attempts == 1
        queue.run(*pending.pop(0))
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
