"""split_job and merge_job compute with no transaction (no row lock) open, then record only if the
job did not change meanwhile (issue 14, item 16)."""

import pytest
from django.db import connection

from analysis.choices import JobStatus
from analysis.models import JobBatch
from workers import pipeline, queue
from workers.services import do_cancel_job, do_retry_job, do_start_job

pytestmark = pytest.mark.django_db(transaction=True)

PARAMS = {"batch_size": 4, "tile_px": 256}


def hook(monkeypatch, name, during):
    """Wrap pipeline.<name>: note whether a transaction is open when it runs, then call `during`."""
    real, seen = getattr(pipeline, name), {}

    def wrapped(job, *args):
        seen["in_transaction"] = connection.in_atomic_block
        during(job)
        return real(job, *args)

    monkeypatch.setattr(pipeline, name, wrapped)
    return seen


def test_split_plans_outside_the_lock_and_a_cancel_meanwhile_wins(synthetic_slide, monkeypatch):
    seen = hook(monkeypatch, "plan_job", lambda job: do_cancel_job(job))
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split
    assert seen["in_transaction"] is False
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.batches_total == 0
    assert not JobBatch.objects.filter(job=job).exists() and pending == []


def test_a_split_computed_for_an_earlier_attempt_is_discarded(synthetic_slide, monkeypatch):
    def cancel_and_retry(job):
        do_cancel_job(job)
        with queue.collecting():
            do_retry_job(job)

    hook(monkeypatch, "plan_job", cancel_and_retry)
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))
    job.refresh_from_db()
    assert (job.status, job.attempt, job.batches_total) == (JobStatus.QUEUED, 2, 0)


def test_merge_runs_outside_the_lock_and_a_cancel_meanwhile_wins(synthetic_slide, monkeypatch):
    seen = hook(monkeypatch, "merge_job", lambda job: do_cancel_job(job))
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        while pending:
            queue.run(*pending.pop(0))
    assert seen["in_transaction"] is False
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.result_file == "" and job.summary == {}


def test_an_uninterrupted_job_still_finishes(synthetic_slide, monkeypatch):
    seen = hook(monkeypatch, "merge_job", lambda job: None)
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        while pending:
            queue.run(*pending.pop(0))
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.summary["detections"] > 0 and seen["in_transaction"] is False
