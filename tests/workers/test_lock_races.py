"""Races between the watchdog, batches and a cancel and retry (SYNTHETIC slide): a batch over its cap
fails only the attempt it belongs to, and locks are taken job first, then batch (PostgreSQL only: a
batch leased while another batch recorded its result locked batch, job and slide in one statement,
the other order, and the two deadlocked)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from analysis.choices import BatchStatus, JobStatus
from analysis.models import AnalysisJob, JobBatch
from workers import pipeline, queue, tasks
from workers.services import do_cancel_job, do_retry_job, do_start_job

pytestmark = pytest.mark.django_db(transaction=True)
PARAMS = {"batch_size": 4, "tile_px": 256}


class Killed(BaseException):
    pass


def split(slide):
    with queue.collecting() as pending:
        job = do_start_job(slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))
        return job, list(pending)


@override_settings(PDL1_BATCH_MAX_ATTEMPTS=1)
def test_a_batch_over_its_cap_does_not_fail_the_attempt_retried_meanwhile(synthetic_slide, monkeypatch):
    job, batches = split(synthetic_slide)

    def killed(*args):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(pipeline, "detect_batch", killed)
        with pytest.raises(Killed):
            queue.run(*batches[0])  # its worker dies: leased once, the cap
    JobBatch.objects.filter(job=job, index=0).update(deadline=timezone.now() - timedelta(seconds=1))
    real_fail = tasks._fail

    def retried_first(job_id, reason, attempt=None):  # a pathologist cancels and retries in between
        with queue.collecting():
            do_retry_job(do_cancel_job(job))
        real_fail(job_id, reason, attempt=attempt)

    monkeypatch.setattr(tasks, "_fail", retried_first)
    tasks.requeue_overdue_batches()
    job.refresh_from_db()
    assert (job.status, job.attempt, job.error) == (JobStatus.QUEUED, 2, "")


@pytest.fixture
def job_row_held_elsewhere():
    """Another transaction (a batch recording its result) holds a job's row lock until released."""
    locked, release, threads = threading.Event(), threading.Event(), []

    def hold(job_id):
        def run():
            from django.db import connection as own

            try:
                with transaction.atomic():
                    AnalysisJob.objects.select_for_update().get(pk=job_id)
                    locked.set()
                    release.wait(30)
            finally:
                own.close()
        thread = threading.Thread(target=run)
        thread.start()
        threads.append(thread)
        assert locked.wait(10)

    def let_go():
        release.set()
        for thread in threads:
            thread.join()

    yield hold, let_go
    let_go()


needs_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (DATABASE_URL)")


def lock_timeout():
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '3s'")  # waiting for the job row would raise, not hang


@needs_postgresql
def test_leasing_a_batch_does_not_lock_its_job(synthetic_slide, monkeypatch, job_row_held_elsewhere):
    hold, let_go = job_row_held_elsewhere
    job, batches = split(synthetic_slide)
    real = pipeline.detect_batch

    def computed(job, tiles):  # leased without waiting; the other transaction ends while it computes
        let_go()
        return real(job, tiles)

    monkeypatch.setattr(pipeline, "detect_batch", computed)
    hold(job.pk)
    lock_timeout()
    with queue.collecting():
        tasks.detect_batch.__wrapped__(*batches[0][1])  # no retry on the lock timeout
    assert JobBatch.objects.get(job=job, index=0).status == BatchStatus.DONE


@needs_postgresql
def test_the_batch_watchdog_does_not_lock_jobs(synthetic_slide, job_row_held_elsewhere):
    hold, let_go = job_row_held_elsewhere
    job, batches = split(synthetic_slide)
    JobBatch.objects.filter(job=job).update(status=BatchStatus.LEASED, attempts=1,
                                            deadline=timezone.now() - timedelta(seconds=1))
    hold(job.pk)
    lock_timeout()
    with queue.collecting() as pending:
        assert tasks.requeue_overdue_batches(job.pk) == len(batches)
    assert len(pending) == len(batches)
