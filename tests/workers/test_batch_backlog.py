"""Batches waiting in a busy queue (no worker took them yet) are queued again with a growing interval,
not once per lease: 50 slides queued at once with one worker piled a copy of every waiting batch every
900 s. A batch whose task was lost is still queued again. SYNTHETIC slide."""

from datetime import timedelta

import pytest
from django.utils import timezone

from analysis.choices import JobStatus
from analysis.models import JobBatch
from workers import queue, tasks
from workers.services import do_start_job

pytestmark = pytest.mark.django_db(transaction=True)
PARAMS = {"batch_size": 4, "tile_px": 256}
START = timezone.now


def test_waiting_batches_are_queued_again_a_few_times_and_the_job_finishes(synthetic_slide, monkeypatch, settings):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split
        originals = list(pending)
        pending.clear()
        batches = len(originals)
        started = START()
        copies = []
        for k in range(1, 81):  # the watchdog every tenth of a lease, for 8 leases, while the batches wait
            moment = started + timedelta(seconds=k / 10 * settings.PDL1_BATCH_DEADLINE_SECONDS)
            monkeypatch.setattr(timezone, "now", lambda moment=moment: moment)
            tasks.requeue_overdue_batches()
            copies += pending
            pending.clear()
        monkeypatch.undo()
        assert batches <= len(copies) <= 4 * batches  # about 1, 2, 4 leases in; a lost task comes back
        for task in originals + copies:
            queue.run(*task)
        while pending:
            queue.run(*pending.pop(0))
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    assert set(JobBatch.objects.filter(job=job).values_list("attempts", flat=True)) == {1}
