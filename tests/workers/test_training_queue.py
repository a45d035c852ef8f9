"""Training never holds up clinical analysis (issue 18 item 7), with real processes: a `qcluster`
on the training queue busy with a long training run, a default `qcluster` for analysis. The
analysis job completes while the training is still running; the run reports its progress (steps,
loss, ETA) and, cancelled, stops between steps and registers no model.

Embedded mode (SQLite file + ORM broker) by default; PostgreSQL + Redis (database 15) when
DATABASE_URL / REDIS_URL are set. Slide and training data are SYNTHETIC (analysis.synthetic).
"""

import os
from urllib.parse import urlsplit, urlunsplit

import pytest

from analysis.choices import JobStatus
from tests.workers.processes import Cluster, Database, Driver, clear_redis_queue, environment, migrate, wait_for
from tests.workers.synthetic_dataset import write_synthetic_dataset
from workers.choices import TRAINING_QUEUE, TrainingStatus

pytestmark = pytest.mark.slow

REDIS_DB = 15  # a Redis database of its own
QUEUES = ("pdl1", TRAINING_QUEUE)
FAST = {"tile_px": 512, "overlap_px": 64, "batch_size": 4}


@pytest.fixture
def plant(tmp_path, synthetic_slide_file):
    tmp_path = tmp_path / "plant"  # apart from the suite's own media folder under tmp_path
    media = tmp_path / "media"
    (media / "tmp").mkdir(parents=True)
    db = Database.create(tmp_path, os.environ.get("DATABASE_URL"))
    base = os.environ.get("REDIS_URL")
    redis_url = urlunsplit(urlsplit(base)._replace(path=f"/{REDIS_DB}")) if base else None
    clear_redis_queue(redis_url, QUEUES)
    env = {**environment(db, redis_url, media, deadline_s=900), "OMP_NUM_THREADS": "1"}  # a shared 2-core machine
    started = []
    try:
        migrate(env, tmp_path / "migrate.log")
        driver = Driver(env, tmp_path / "driver.log")
        started.append(driver)
        slide = driver("ingest", path=synthetic_slide_file.path)["slide"]
        folder = write_synthetic_dataset(media / "datasets" / "synthetic-run", train=2, val=1, size=128)
        training = Cluster("training", env, tmp_path / "cluster-training.log", queue=TRAINING_QUEUE)
        started.append(training)
        analysis = Cluster("analysis", env, tmp_path / "cluster-analysis.log")
        started.append(analysis)
        yield {"db": db, "driver": driver, "slide": slide, "folder": str(folder), "clusters": (training, analysis)}
    finally:
        for proc in reversed(started):
            proc.stop()
        db.close()
        clear_redis_queue(redis_url, QUEUES)


def test_an_analysis_job_completes_while_training_occupies_the_training_worker(plant):
    db, driver = plant["db"], plant["driver"]
    for cluster in plant["clusters"]:
        cluster.wait_ready(120)
    run = driver("train", folder=plant["folder"], name="occupying-run", steps=100_000)["run"]
    def first_step():
        now = db.training_run(run)
        assert now["status"] in (TrainingStatus.QUEUED, TrainingStatus.RUNNING), now["error"]
        return now["steps_done"] >= 1 and now

    busy = wait_for(first_step, 180, 0.5, "the training run to report its first step")
    assert busy["status"] == TrainingStatus.RUNNING and busy["steps_total"] == 100_000
    assert busy["loss"] is not None and busy["eta_seconds"] is not None and busy["eta_seconds"] > 0

    job = driver("start", slide=plant["slide"], params=FAST)["job"]
    done = wait_for(lambda: (j := db.job(job))["status"] in (JobStatus.DONE, JobStatus.FAILED) and j, 240, 0.5,
                    f"analysis job {job} to finish")
    assert done["status"] == JobStatus.DONE, done["error"]
    during = db.training_run(run)
    assert during["status"] == TrainingStatus.RUNNING  # the training worker was busy all along
    assert during["steps_done"] > busy["steps_done"]  # and its progress kept coming

    assert driver("cancel_training", run=run)["state"] == "Cancelling (stops after the current step)"
    ended = wait_for(lambda: (r := db.training_run(run))["status"] != TrainingStatus.RUNNING and r, 120, 0.5,
                     "the cancelled run to stop")
    assert ended["status"] == TrainingStatus.CANCELLED and ended["model_version_id"] is None
    assert db.rows("SELECT COUNT(*) FROM analysis_modelversion WHERE name = 'occupying-run'") == [(0,)]
    # Which worker ran what: every analysis stage on the default queue, the training on its own.
    assert db.clusters_that_ran(f"job-{job}") == {"pdl1"}
    wait_for(lambda: db.clusters_that_ran("processes-test"), 30, 0.5, "the training task's result")
    assert db.clusters_that_ran("processes-test") == {TRAINING_QUEUE}
