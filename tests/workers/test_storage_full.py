"""A full MEDIA_ROOT for a few seconds (an upload or a backup filling it) does not fail a job whose
detections were computed: the batch and merge writes are tried again until space comes back, and
only storage full for longer than the stage waits fails the job, with a reason that says so."""

import errno

import pytest

from analysis.choices import JobStatus
from workers import fullstorage, pipeline, queue, tasks
from workers.services import do_start_job

pytestmark = pytest.mark.django_db(transaction=True)

PARAMS = {"batch_size": 4, "tile_px": 256}


def run_job(slide):
    with queue.collecting() as pending:
        job = do_start_job(slide, detector="classic", parameters=PARAMS)
        while pending:
            queue.run(*pending.pop(0))
    job.refresh_from_db()
    return job


def full_for(monkeypatch, target, name, failures):
    """`target.name` raises ENOSPC on its first `failures` calls (after writing nothing), then works."""
    real, calls = getattr(target, name), {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= failures:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)
    monkeypatch.setattr(target, name, flaky)
    return calls


@pytest.fixture
def waits(monkeypatch):
    slept = []
    monkeypatch.setattr(fullstorage.time, "sleep", slept.append)
    return slept


def test_batch_and_merge_writes_ride_out_a_short_full_disk(synthetic_slide, media_root, monkeypatch, waits):
    reference = run_job(synthetic_slide)
    assert reference.status == JobStatus.DONE
    batch_calls = full_for(monkeypatch, pipeline, "write_batch_file", 3)
    store_calls = full_for(monkeypatch, pipeline.detection_store, "write_store", 2)
    job = run_job(synthetic_slide)
    assert job.status == JobStatus.DONE, job.error
    assert job.summary["counts"] == reference.summary["counts"]
    assert batch_calls["n"] == job.batches_total + 3 and store_calls["n"] == 3
    assert len(waits) == 5 and waits[:2] == [0.5, 1.0]  # backs off between tries


def test_storage_full_for_longer_than_the_stage_waits_fails_the_job_saying_so(synthetic_slide, media_root,
                                                                             monkeypatch, waits):
    monkeypatch.setattr(tasks, "STAGE_STORAGE_RETRY_SECONDS", 0)
    full_for(monkeypatch, pipeline, "write_batch_file", 10**6)
    job = run_job(synthetic_slide)
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("batch ") and "storage (MEDIA_ROOT) stayed full" in job.error
    assert "free space there, then Retry" in job.error


def test_only_a_full_file_system_is_waited_for(waits):
    def denied():
        raise PermissionError(errno.EACCES, "Permission denied")
    with pytest.raises(PermissionError):
        fullstorage.retry_while_storage_full(denied, "writing", 60)
    assert waits == []
    quota = iter([OSError(errno.EDQUOT, "Disk quota exceeded"), None])

    def over_quota_once():
        exc = next(quota)
        if exc:
            raise exc
        return "written"
    assert fullstorage.retry_while_storage_full(over_quota_once, "writing", 60) == "written"
    assert waits == [0.5]


def test_a_wait_renews_the_batch_lease_so_the_watchdog_leaves_the_batch_alone(synthetic_slide, media_root,
                                                                              monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from analysis.models import JobBatch

    full_for(monkeypatch, pipeline, "write_batch_file", 2)
    overdue_at_wait = []

    def wait(seconds):  # what the watchdog finds while this worker waits; then the wait outlasts the lease
        batch = JobBatch.objects.get(index=0)
        overdue_at_wait.append(batch.deadline < timezone.now())
        overdue_at_wait.append(tasks.requeue_overdue_batches(batch.job_id))
        JobBatch.objects.filter(pk=batch.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr(fullstorage.time, "sleep", wait)
    job = run_job(synthetic_slide)
    assert job.status == JobStatus.DONE, job.error
    assert overdue_at_wait == [False, 0, False, 0]
    assert JobBatch.objects.get(job=job, index=0).attempts == 1  # never given to another worker


def test_a_batch_that_went_to_another_worker_during_the_wait_is_let_go(synthetic_slide, media_root, monkeypatch):
    from analysis.models import JobBatch

    real = pipeline.write_batch_file

    def batch_0_full(job, index, found):
        if index == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(job, index, found)
    monkeypatch.setattr(pipeline, "write_batch_file", batch_0_full)

    def taken_over(seconds):  # the lease ran out and another worker leased the batch meanwhile
        JobBatch.objects.filter(index=0).update(attempts=5)
    monkeypatch.setattr(fullstorage.time, "sleep", taken_over)
    job = run_job(synthetic_slide)
    assert job.status == JobStatus.RUNNING and not job.error  # not failed: the other worker's copy counts
    batch = JobBatch.objects.get(job=job, index=0)
    assert batch.status != "done" and batch.attempts == 5


def test_a_late_copy_of_a_merged_batch_leaves_no_file_behind(synthetic_slide, media_root, monkeypatch):
    """Worker A's lease runs out while it computes batch 0; B computes it, the job merges (its batch files
    removed); A's write then lands beside the store and is removed, not left for good."""
    from datetime import timedelta

    from django.utils import timezone

    from analysis.models import JobBatch

    real, state = pipeline.detect_batch, {"first": True}
    with queue.collecting() as pending:
        def slow_first(job, tiles):
            found = real(job, tiles)
            if state.pop("first", False):
                JobBatch.objects.filter(job=job, index=0).update(deadline=timezone.now() - timedelta(seconds=1))
                tasks.requeue_overdue_batches(job.pk)  # B takes batch 0 ...
                while pending:  # ... and every other stage runs to the merge
                    queue.run(*pending.pop(0))
            return found
        monkeypatch.setattr(pipeline, "detect_batch", slow_first)
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        while pending:
            queue.run(*pending.pop(0))
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and JobBatch.objects.get(job=job, index=0).attempts == 2
    left = sorted(p.name for p in pipeline.job_folder(job).iterdir())
    assert left == ["detections.store"], left
