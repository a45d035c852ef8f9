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
