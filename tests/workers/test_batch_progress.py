"""A finished batch adds its own tiles to the job's progress: it no longer reads every done batch's tile
list under the job's row lock (quadratic in the batches of a large slide). SYNTHETIC slide."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analysis.choices import JobStatus
from analysis.models import JobBatch
from workers import queue
from workers.services import do_start_job

pytestmark = pytest.mark.django_db(transaction=True)
PARAMS = {"batch_size": 4, "tile_px": 256}


def test_each_batch_counts_its_own_tiles_once(synthetic_slide):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split
        batches = [task for task in pending if task[0] == "workers.tasks.detect_batch"]
        pending.clear()
        for task in batches[:-1]:
            queue.run(*task)
        with CaptureQueriesContext(connection) as queries:
            queue.run(*batches[-1])
        done_tiles = [q["sql"] for q in queries
                      if '"tiles"' in q["sql"] and """"status" = 'done'""" in q["sql"] and "NOT (" not in q["sql"]]
        assert done_tiles == []  # no done batch's tile list read again
        job.refresh_from_db()
        assert job.status == JobStatus.MERGING
        assert job.tiles_done == job.tiles_total and job.batches_done == job.batches_total
        seconds = sum(JobBatch.objects.filter(job=job).values_list("seconds", flat=True))
        assert job.timings["detect"] == pytest.approx(seconds)
