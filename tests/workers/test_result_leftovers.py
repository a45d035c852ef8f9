"""What a job leaves on disk is its result: the batch files go once the merge has committed, an earlier
attempt's folder once a later attempt is done, and the temporary copies of a killed writer once old.
SYNTHETIC slide."""

import os
import time

import pytest

from analysis.choices import JobStatus
from analysis.detection_store import open_store
from cases.uploads import TEMP_MAX_AGE_SECONDS, sweep_stale_temporary_files
from workers import queue
from workers.services import do_cancel_job, do_retry_job, do_start_job

pytestmark = pytest.mark.django_db(transaction=True)
PARAMS = {"batch_size": 4, "tile_px": 256}


def run_all(pending):
    while pending:
        queue.run(*pending.pop(0))


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_done_job_keeps_its_store_and_not_its_batch_files(synthetic_slide, media_root):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        run_all(pending)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    assert files_under(media_root / "results") == [f"job-{job.pk}/attempt-1/detections.store"]
    assert len(open_store(media_root / job.result_file)) == job.summary["detections"]


def test_a_retry_that_finishes_removes_the_earlier_attempts_folder(synthetic_slide, media_root):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split
        queue.run(*pending.pop(0))  # one batch of attempt 1 written
        do_cancel_job(job)
        pending.clear()
        assert (media_root / "results" / f"job-{job.pk}" / "attempt-1").is_dir()
        do_retry_job(job)
        run_all(pending)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.attempt == 2, job.error
    assert files_under(media_root / "results") == [f"job-{job.pk}/attempt-2/detections.store"]
    assert len(open_store(media_root / job.result_file)) == job.summary["detections"]


def test_the_sweep_removes_old_temporary_copies_under_results_only(media_root):
    folder = media_root / "results" / "job-4" / "attempt-1"
    folder.mkdir(parents=True)
    names = {".batch-00002.4711.npz": True,  # pid-named, before mkstemp
             ".batch-00003.npz.k2j4_x.tmp": True, ".detections.store.a8s7.tmp": True,
             "batch-00001.npz": False, "detections.store": False, ".hidden-by-someone": False}
    for name in names:
        (folder / name).write_bytes(b"x")
        then = time.time() - TEMP_MAX_AGE_SECONDS - 60
        os.utime(folder / name, (then, then))
    (folder / ".batch-00004.npz.fresh.tmp").write_bytes(b"x")  # a write under way
    removed = sweep_stale_temporary_files()
    assert sorted(removed) == sorted(f"results/job-4/attempt-1/{n}" for n, old in names.items() if old)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [".batch-00004.npz.fresh.tmp", ".hidden-by-someone", "batch-00001.npz", "detections.store"])
