"""A pipeline stage that meets an unreachable database (a PostgreSQL restart) runs again when it is
back, within STAGE_DB_RETRY_SECONDS, instead of failing and leaving its job to the watchdog after
BATCH_DEADLINE_SECONDS (issue 19: in the soak, every batch running during the restart waited for its
deadline). SYNTHETIC slide."""

import pytest
from django.db import OperationalError

from analysis.choices import JobStatus
from analysis.models import JobBatch
from workers import dbretry, queue, tasks
from workers.services import do_start_job

pytestmark = pytest.mark.django_db(transaction=True)

PARAMS = {"batch_size": 4, "tile_px": 256}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(dbretry, "FIRST_DELAY", 0.01)


def fail_first(monkeypatch, target, times=1):
    """`target` raises OperationalError (as a dropped connection does) the first `times` calls."""
    module, name = target.rsplit(".", 1)
    import importlib

    owner = importlib.import_module(module)
    real, calls = getattr(owner, name), []

    def flaky(*args, **kwargs):
        calls.append(args)
        if len(calls) <= times:
            raise OperationalError("terminating connection due to administrator command")
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, flaky)
    return calls


def run_all(pending):
    while pending:
        queue.run(*pending.pop(0))


def test_a_batch_whose_record_meets_a_database_outage_is_recorded_when_it_is_back(synthetic_slide, monkeypatch):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split
        # the record transaction of the first batch breaks (its progress event is sent inside it)
        calls = fail_first(monkeypatch, "workers.tasks.emit_job_progress")
        queue.run(*pending.pop(0))
        assert len(calls) == 2  # the stage ran again and recorded
        batch = JobBatch.objects.get(job=job, index=0)
        assert batch.status == "done" and batch.attempts == 1  # its own lease taken back, not a new attempt
        run_all(pending)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error


def test_a_split_that_meets_a_database_outage_is_not_failed(synthetic_slide, monkeypatch):
    calls = fail_first(monkeypatch, "workers.pipeline.plan_job")
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        run_all(pending)
    job.refresh_from_db()
    assert len(calls) == 2 and job.status == JobStatus.DONE and job.error == ""


def test_a_merge_that_meets_a_database_outage_is_not_failed(synthetic_slide, monkeypatch):
    calls = fail_first(monkeypatch, "workers.pipeline.merge_job", times=2)
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        run_all(pending)
    job.refresh_from_db()
    assert len(calls) == 3 and job.status == JobStatus.DONE, job.error


def test_a_database_down_for_longer_fails_the_task_and_leaves_the_job_to_the_watchdog(synthetic_slide, monkeypatch):
    monkeypatch.setattr(tasks, "STAGE_DB_RETRY_SECONDS", 0.2)
    calls = fail_first(monkeypatch, "workers.pipeline.plan_job", times=10**6)
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        with pytest.raises(dbretry.DatabaseLost, match="unreachable for more than 0.2 s while split_job"):
            queue.run(*pending.pop(0))
    assert len(calls) > 1
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.stage_deadline is not None  # the watchdog queues it again
