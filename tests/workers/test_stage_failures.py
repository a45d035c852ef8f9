"""A failing stage ends its job with the reason, never leaves it running (issue 14, item 5): a detector
that cannot load, any exception in split, detect or merge, and a batch whose worker keeps dying
(BATCH_MAX_ATTEMPTS)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from analysis.choices import BatchStatus, JobStatus, ModelStatus
from analysis.models import JobBatch, ModelVersion
from analysis.registry import sha256_file
from tests.analysis.test_registry import PDL1_HELD_OUT
from workers import pipeline, queue, tasks
from workers.services import do_start_job

pytestmark = pytest.mark.django_db(transaction=True)

PARAMS = {"batch_size": 4, "tile_px": 256}


def run_all(pending):
    while pending:
        queue.run(*pending.pop(0))


def run_job(slide, detector="classic"):
    with queue.collecting() as pending:
        job = do_start_job(slide, detector=detector, parameters=PARAMS)
        run_all(pending)  # a stage that raised would raise here
    job.refresh_from_db()
    return job


def test_a_corrupt_checkpoint_fails_the_job_with_its_reason(synthetic_slide, media_root, personas):
    corrupt = media_root / "models" / "corrupt.pt"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"\x80\x04\x95 this is not a checkpoint" * 50)
    ModelVersion.objects.create(name="corrupt-v1", file="models/corrupt.pt", sha256=sha256_file(corrupt),
                                arch="fcn", backbone="resnet18", mpp=0.5, status=ModelStatus.CLINICAL,
                                training_data=PDL1_HELD_OUT)
    job = run_job(synthetic_slide, detector="corrupt-v1")
    assert job.status == JobStatus.FAILED and job.finished_at is not None
    assert "corrupt-v1 could not be loaded" in job.error
    assert not JobBatch.objects.filter(job=job, status=BatchStatus.DONE).exists()
    web = Client()
    web.force_login(personas["pathologist"])
    assert "could not be loaded" in web.get(f"/slides/{synthetic_slide.pk}/analysis/").content.decode()


def test_weights_replaced_on_disk_are_not_run(synthetic_slide, media_root):
    from tests.analysis.test_registry import tiny_checkpoint

    path = tiny_checkpoint(media_root / "models-v1.pt")
    ModelVersion.objects.create(name="swapped-v1", file="models-v1.pt", sha256="0" * 64, arch="unet", mpp=0.5,
                                status=ModelStatus.CLINICAL, training_data=PDL1_HELD_OUT)
    assert path.is_file()
    job = run_job(synthetic_slide, detector="swapped-v1")
    assert job.status == JobStatus.FAILED and "not the recorded ones" in job.error


@pytest.mark.parametrize("stage, error", [
    ("plan_job", RuntimeError("the tissue mask ran out of memory")),
    ("detect_batch", IndexError("list index out of range")),
    ("merge_job", ValueError("bad store")),
])
def test_any_exception_in_a_stage_fails_the_job(synthetic_slide, monkeypatch, stage, error):
    def boom(*args, **kwargs):
        raise error

    monkeypatch.setattr(pipeline, stage, boom)
    job = run_job(synthetic_slide)
    assert job.status == JobStatus.FAILED
    assert f"{type(error).__name__}: {error}" in job.error


class WorkerKilled(BaseException):
    """Like SIGKILL: nothing after it runs in the task, the batch stays leased."""


def test_a_batch_whose_worker_keeps_dying_stops_at_the_cap(synthetic_slide, monkeypatch, settings):
    settings.PDL1_BATCH_MAX_ATTEMPTS = 2

    def die(*args, **kwargs):
        raise WorkerKilled

    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split
        monkeypatch.setattr(pipeline, "detect_batch", die)
        first = pending[0]
        deliveries = 0
        for _ in range(10):
            job.refresh_from_db()
            if job.is_final:
                break
            with pytest.raises(WorkerKilled):
                queue.run(*first)
            deliveries += 1
            JobBatch.objects.filter(job=job).update(deadline=timezone.now() - timedelta(seconds=1))
            tasks.requeue_overdue_batches(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and deliveries == 2
    assert "did not finish in 2 attempts" in job.error
    assert JobBatch.objects.get(job=job, index=first[1][1]).attempts == 2


def test_a_redelivered_batch_past_the_cap_fails_instead_of_running(synthetic_slide, monkeypatch, settings):
    settings.PDL1_BATCH_MAX_ATTEMPTS = 1
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split
        func, args = pending[0]
        JobBatch.objects.filter(job=job, index=args[1]).update(attempts=1, status=BatchStatus.PENDING)
        ran = []
        monkeypatch.setattr(pipeline, "detect_batch", lambda *a, **k: ran.append(a))
        queue.run(func, args)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and not ran and "1 attempts" in job.error
