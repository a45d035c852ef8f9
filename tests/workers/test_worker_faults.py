"""Worker faults with real processes: two `manage.py qcluster` clusters, one of them killed.

Issue: "A worker killed mid-batch with SIGKILL: the batch is retried, and the final result is
identical to an undisturbed run. An unreadable slide: the job fails with a clear message. Cancel
stops the remaining batches."

Runs in the mode the suite runs in: embedded (a SQLite file + the django-q ORM broker) by default,
PostgreSQL + Redis when DATABASE_URL / REDIS_URL are set (a fresh database, created and dropped
here, and Redis database 13). The slides are SYNTHETIC (analysis.synthetic).
"""

import os
import time
from datetime import timedelta

import numpy as np
import pytest

from analysis.choices import BatchStatus, JobStatus
from analysis.detection_store import open_store
from analysis.synthetic_slide import write_pyramidal_tiff
from tests.workers.processes import (Cluster, Database, Driver, clear_redis_queue, environment, migrate,
                                     redis_url_for_tests, wait_for)

pytestmark = pytest.mark.slow

DEADLINE_S = 3
# Slow, many batches: 2 tiles of 512 px at 0.25 µm/px (upsampled from 0.5) ≈ 0.3 s each.
SLOW = {"tile_px": 512, "overlap_px": 64, "working_mpp": 0.25, "batch_size": 2}
JOB_TIMEOUT_S = 150


@pytest.fixture(scope="module")
def plant(tmp_path_factory, synthetic_slide_file):
    """A fresh database, the driver and two clusters (started by the tests that need them)."""
    root = tmp_path_factory.mktemp("faults")
    media = root / "media"
    (media / "tmp").mkdir(parents=True)
    db = Database.create(root, os.environ.get("DATABASE_URL"))
    redis_url = redis_url_for_tests(os.environ.get("REDIS_URL"))
    clear_redis_queue(redis_url)
    env = environment(db, redis_url, media, DEADLINE_S)
    started = []
    try:
        t0 = time.monotonic()
        migrate(env, root / "migrate.log")
        driver = Driver(env, root / "driver.log")
        started.append(driver)

        class Plant:
            pass

        plant = Plant()
        plant.db, plant.media, plant.root, plant.driver = db, media, root, driver
        plant.clusters = {}
        plant.slide = driver("ingest", path=synthetic_slide_file.path)["slide"]
        plant.setup_s = time.monotonic() - t0

        def cluster(name):
            if name not in plant.clusters:
                plant.clusters[name] = Cluster(name, env, root / f"cluster-{name}.log")
                started.append(plant.clusters[name])
            return plant.clusters[name]

        plant.cluster = cluster
        yield plant
    finally:
        for proc in reversed(started):
            proc.stop()
        db.close()
        clear_redis_queue(redis_url)


def job_status(plant, job_id, *statuses):
    def check():
        job = plant.db.job(job_id)
        return job if job["status"] in statuses else None

    return check


def points(media, result_file):
    with open_store(media / result_file) as store:
        found = store.all()
    order = np.lexsort((found.labels, found.xy[:, 1], found.xy[:, 0]))
    return found.xy[order], found.labels[order]


def test_worker_killed_mid_batch_the_batch_is_retried_and_the_result_is_unchanged(plant):
    t0 = time.monotonic()
    reference = plant.driver("inline", slide=plant.slide, params=SLOW)  # undisturbed, in one process
    assert reference["status"] == JobStatus.DONE, reference["error"]
    reference_s = time.monotonic() - t0

    t0 = time.monotonic()
    job = plant.driver("start", slide=plant.slide, params=SLOW)["job"]
    a = plant.cluster("a")
    a.wait_ready()
    interrupted = None
    for _ in range(5):  # a kill that lands between two batches interrupts nothing: try the next batch
        leased = wait_for(lambda: [b for b in plant.db.batches(job) if b["status"] == BatchStatus.LEASED],
                          60, 0.02, "a leased batch")[0]
        killed = a.kill_workers()  # only cluster a runs yet: its worker holds the lease
        assert killed
        now = next(b for b in plant.db.batches(job) if b["index"] == leased["index"])
        if now["status"] == BatchStatus.LEASED and now["attempts"] == leased["attempts"]:
            interrupted = now
            break
    assert interrupted is not None, "no kill landed while a batch was being detected"
    b = plant.cluster("b")  # the second cluster; cluster a's guard respawns its worker meanwhile

    done = wait_for(job_status(plant, job, JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED),
                    JOB_TIMEOUT_S, 0.25, f"job {job} to finish")
    run_s = time.monotonic() - t0
    assert done["status"] == JobStatus.DONE, done["error"]
    retried = next(x for x in plant.db.batches(job) if x["index"] == interrupted["index"])
    assert retried["status"] == BatchStatus.DONE and retried["attempts"] > interrupted["attempts"]
    assert b.worker_pids() and a.worker_pids(), "both clusters have live workers at the end"

    got_xy, got_labels = points(plant.media, done["result_file"])
    want_xy, want_labels = points(plant.media, reference["result_file"])
    assert len(want_labels) > 300
    np.testing.assert_array_equal(got_xy, want_xy)
    np.testing.assert_array_equal(got_labels, want_labels)
    print(f"\nsetup {plant.setup_s:.1f} s, undisturbed inline run {reference_s:.1f} s, "
          f"killed run {run_s:.1f} s (batch {interrupted['index']} retried)")


def test_unreadable_slide_fails_the_job_with_a_clear_message(plant, tmp_path):
    path = write_pyramidal_tiff(tmp_path / "damaged.tiff", size=(768, 768), mpp=0.5, seed=11, tile=256,
                                compression="zlib").path
    slide = plant.driver("ingest", path=str(path), truncate_to=5000)["slide"]  # damaged after ingest
    plant.cluster("a").wait_ready()
    plant.cluster("b").wait_ready()
    job = plant.driver("start", slide=slide, params=SLOW)["job"]
    failed = wait_for(job_status(plant, job, JobStatus.DONE, JobStatus.FAILED), 60, 0.2, f"job {job} to fail")
    assert failed["status"] == JobStatus.FAILED
    assert "cannot be read" in failed["error"], failed["error"]


def test_cancel_stops_the_remaining_batches(plant):
    plant.cluster("a").wait_ready()
    plant.cluster("b").wait_ready()
    job = plant.driver("start", slide=plant.slide, params=SLOW)["job"]
    wait_for(lambda: any(b["status"] == BatchStatus.DONE for b in plant.db.batches(job)), 60, 0.05,
             "a first batch done")
    assert plant.driver("cancel", job=job)["status"] == JobStatus.CANCELLED
    total = plant.db.job(job)["batches_total"]
    # Every batch task queued at split has been taken by a worker (each leaves a result row).
    wait_for(lambda: plant.db.tasks_run(job, "workers.tasks.detect_batch") >= total, 60, 0.2,
             "the queued batch tasks to be delivered")
    cancelled = plant.db.job(job)
    batches = plant.db.batches(job)
    assert cancelled["status"] == JobStatus.CANCELLED
    done = [b for b in batches if b["status"] == BatchStatus.DONE]
    untouched = [b for b in batches if b["attempts"] == 0]
    assert 1 <= len(done) < total and untouched, batches
    # A batch leased after the cancel would have a deadline past cancel + deadline.
    latest_lease = max(b["deadline"] for b in batches) - timedelta(seconds=DEADLINE_S)
    assert latest_lease <= cancelled["finished_at"] + timedelta(seconds=0.5), (latest_lease, cancelled)
