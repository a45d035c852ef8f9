"""The watchdog queues again a split or merge whose task was lost (a Redis restart, a broker that was
down when the stage was queued, a worker killed in it), on a SYNTHETIC slide (issue 19: jobs stayed
queued for ever after a Redis restart in the soak)."""

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


def expire_lease(job):
    AnalysisJob.objects.filter(pk=job.pk).update(stage_deadline=timezone.now() - timedelta(seconds=1))


def finish(pending):
    while pending:
        queue.run(*pending.pop(0))


def test_a_lost_split_is_queued_again_and_the_job_finishes(synthetic_slide):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        assert job.stage_deadline > timezone.now()  # leased from the moment it is queued
        pending.clear()  # the split task is lost
        assert tasks.requeue_overdue_batches() == 0  # the lease has not run out: nothing to do
        expire_lease(job)
        tasks.requeue_overdue_batches()
        assert pending == [("workers.tasks.split_job", (job.pk,))]
        finish(pending)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    assert job.stage_deadline is None and job.stage_attempts == 0


def test_a_lost_merge_is_queued_again_and_the_job_finishes(synthetic_slide):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        while pending and pending[0][0] != "workers.tasks.merge_job":
            queue.run(*pending.pop(0))
        job.refresh_from_db()
        assert job.status == JobStatus.MERGING and job.stage_deadline > timezone.now()
        pending.clear()  # the merge task is lost
        expire_lease(job)
        assert tasks.requeue_lost_stages() == 1
        assert pending == [("workers.tasks.merge_job", (job.pk,))]
        finish(pending)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error


def test_a_late_duplicate_of_a_requeued_split_does_nothing(synthetic_slide):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        original = pending.pop(0)
        expire_lease(job)
        tasks.requeue_lost_stages()
        finish(pending)  # the requeued split, then the batches and the merge
        job.refresh_from_db()
        done_at, summary = job.finished_at, job.summary
        queue.run(*original)  # the lost task turns up after all
        assert pending == []
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.finished_at == done_at and job.summary == summary


class Killed(BaseException):
    """The worker process dies in the stage (SIGKILL, out of memory): nothing after it runs."""


def killed(*args):
    raise Killed


@override_settings(PDL1_BATCH_MAX_ATTEMPTS=2)
def test_a_stage_whose_worker_dies_every_time_fails_its_job_with_the_reason(synthetic_slide, monkeypatch):
    monkeypatch.setattr(tasks, "_own_stages", set())  # the dead workers' memory
    monkeypatch.setattr("workers.pipeline.plan_job", killed)
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        with pytest.raises(Killed):
            queue.run(*pending.pop(0))
        expire_lease(job)
        assert tasks.requeue_lost_stages() == 1  # second attempt
        with pytest.raises(Killed):
            queue.run(*pending.pop(0))
        expire_lease(job)
        assert tasks.requeue_lost_stages() == 0
        assert pending == []
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "split stage did not finish in 2 attempts" in job.error


def test_running_and_final_jobs_are_left_alone(synthetic_slide):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split: running, the batches have leases of their own
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING and job.stage_deadline is None
        AnalysisJob.objects.filter(pk=job.pk).update(stage_deadline=timezone.now() - timedelta(days=1))
        pending.clear()
        assert tasks.requeue_lost_stages() == 0


def test_a_job_queued_while_the_broker_is_down_is_created_and_queued_later(synthetic_slide, monkeypatch):
    """The broker refuses the split task at commit (Redis restarting): the job is kept, the request
    does not fail, and the watchdog queues the split when the lease runs out."""
    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("django_q.tasks.async_task", broker_down)
    job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    monkeypatch.undo()
    with queue.collecting() as pending:
        expire_lease(job)
        tasks.requeue_lost_stages()
        assert pending == [("workers.tasks.split_job", (job.pk,))]
