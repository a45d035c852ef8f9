"""A training worker SIGKILLed mid-run, with real processes (issue 19): a `qcluster` on the training
queue trains, its worker is killed, and the training watchdog - the django-q2 schedule of migration
workers 0003, run by the default `qcluster` - ends the run that would otherwise say "Training" for
ever: killed before its first checkpoint, it fails with the reason (resuming from a checkpoint is
tests/workers/test_training_faults.py's). Nothing here calls the watchdog: the schedule does.

Embedded mode (SQLite file + ORM broker) by default; PostgreSQL + Redis (database 14) when
DATABASE_URL / REDIS_URL are set (its queues in REDIS_URL's database are cleared). Training data are SYNTHETIC (analysis.synthetic).
"""

import os

import pytest

from tests.workers.processes import Cluster, Database, Driver, clear_redis_queue, environment, migrate, wait_for
from tests.workers.synthetic_dataset import write_synthetic_dataset
from workers.choices import TRAINING_QUEUE, TrainingStatus

pytestmark = pytest.mark.slow

QUEUES = ("pdl1", TRAINING_QUEUE)
# Longer than the slowest step on a loaded 2-core machine: at 30 s (the least allowed) a first step
# under load outlasted it and the watchdog ended a live run (which then stopped at its next step).
STALE_SECONDS = 90


@pytest.fixture
def plant(tmp_path):
    tmp_path = tmp_path / "plant"  # apart from the suite's own media folder under tmp_path
    media = tmp_path / "media"
    (media / "tmp").mkdir(parents=True)
    db = Database.create(tmp_path, os.environ.get("DATABASE_URL"))
    redis_url = os.environ.get("REDIS_URL")
    clear_redis_queue(redis_url, QUEUES)
    env = {**environment(db, redis_url, media, deadline_s=900), "OMP_NUM_THREADS": "1",
           "TRAINING_STALE_SECONDS": str(STALE_SECONDS)}
    started = []
    try:
        migrate(env, tmp_path / "migrate.log")
        driver = Driver(env, tmp_path / "driver.log")
        started.append(driver)
        folder = write_synthetic_dataset(media / "datasets" / "synthetic-run", size=128)
        training = Cluster("training", env, tmp_path / "cluster-training.log", queue=TRAINING_QUEUE)
        started.append(training)
        default = Cluster("default", env, tmp_path / "cluster-default.log")  # runs the schedules
        started.append(default)
        yield {"db": db, "driver": driver, "folder": str(folder), "training": training, "default": default}
    finally:
        for proc in reversed(started):
            proc.stop()
        db.close()
        clear_redis_queue(redis_url, QUEUES)


def test_a_run_whose_training_worker_is_killed_is_failed_by_the_scheduled_watchdog(plant):
    db, driver, training = plant["db"], plant["driver"], plant["training"]
    training.wait_ready(120)
    plant["default"].wait_ready(120)
    run = driver("train", folder=plant["folder"], name="killed-run", steps=100_000)["run"]

    def stepping():
        now = db.training_run(run)
        assert now["status"] in (TrainingStatus.QUEUED, TrainingStatus.RUNNING), now["error"]
        return now["steps_done"] >= 1 and now

    wait_for(stepping, 240, 0.5, "the training run to report its first step")
    killed = training.kill_workers()
    assert killed
    at_kill = db.training_run(run)
    assert at_kill["status"] == TrainingStatus.RUNNING  # what SIGKILL leaves: nobody will end it but the watchdog

    # Stale after STALE_SECONDS; the schedule runs every minute.
    ended = wait_for(lambda: (r := db.training_run(run))["status"] != TrainingStatus.RUNNING and r,
                     STALE_SECONDS + 150, 1.0, "the watchdog to end the lost run")
    assert ended["status"] == TrainingStatus.FAILED, ended
    assert ended["error"].startswith(f"The training worker stopped reporting at step {ended['steps_done']} of 100000 ")
    assert ended["error"].endswith("before its first checkpoint: nothing to resume from. Train again.")
    assert ended["steps_done"] >= at_kill["steps_done"] and ended["model_version_id"] is None
