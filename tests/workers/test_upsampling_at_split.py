"""The upsampling refusal (test_upsampling_refusal) is checked again when the job is split, against the slide's
resolution the split really tiles at: the slide's mpp corrected after the job was queued (or before a Retry) let a
0.25 µm clinical model run on a 0.5 µm slide x2 and the job completed, with no `upsampled` in its provenance."""

import pytest

from cases.services import do_set_slide_mpp
from tests.workers.test_upsampling_refusal import clinical
from workers import queue
from workers.services import do_retry_job, do_start_job

pytestmark = pytest.mark.django_db(transaction=True)
PARAMS = {"tile_px": 256, "batch_size": 64}


def queued(slide, **kwargs):
    with queue.collecting() as pending:
        job = do_start_job(slide, parameters=PARAMS, **kwargs)
    return job, pending


def split(job, pending):
    func, args = pending.pop(0)
    assert func.endswith("split_job")
    with queue.collecting():  # the split only: its batches are not detected here
        queue.run(func, args)
    job.refresh_from_db()
    return job


def test_a_clinical_job_whose_slide_became_coarser_is_refused_at_split(synthetic_slide, media_root):
    fine = clinical(media_root, "fine-v1", 0.25)
    do_set_slide_mpp(synthetic_slide, 0.25)
    job, pending = queued(synthetic_slide, detector=fine.name)
    assert "upsampled" not in job.provenance
    do_set_slide_mpp(synthetic_slide, 0.5)  # corrected before the split ran
    job = split(job, pending)
    assert job.status == "failed" and not job.batches.exists()
    assert job.error.startswith("the slide's resolution is 0.5 µm/px, coarser than the 0.25 µm/px model fine-v1 "
                                "reads: it would count nuclei on tiles upsampled x2.0")


def test_a_retry_checks_the_slide_as_it_is_then(synthetic_slide, media_root):
    fine = clinical(media_root, "fine-v1", 0.25)
    do_set_slide_mpp(synthetic_slide, 0.25)
    job, pending = queued(synthetic_slide, detector=fine.name)
    pending.clear()
    job.mark_failed("a worker stopped")
    job.save()
    do_set_slide_mpp(synthetic_slide, 0.5)
    with queue.collecting() as pending:
        job = do_retry_job(job)
    assert split(job, pending).status == "failed" and "upsampled x2.0" in job.error


def test_research_runs_and_classic_record_the_factor_they_ran_at(synthetic_slide, media_root):
    fine = clinical(media_root, "fine-v1", 0.25)
    do_set_slide_mpp(synthetic_slide, 0.25)
    job, pending = queued(synthetic_slide, detector=fine.name, research=True)
    assert job.provenance["research"] is True and "upsampled" not in job.provenance
    do_set_slide_mpp(synthetic_slide, 0.5)
    job = split(job, pending)
    assert job.status == "running" and job.provenance["upsampled"] == "x2.0" and job.provenance["tiled_at_mpp"] == 0.5

    do_set_slide_mpp(synthetic_slide, 0.65)  # the demo slide's resolution: classic reads it at 0.5
    job, pending = queued(synthetic_slide, detector="classic")
    assert job.provenance["upsampled"] == "x1.3"
    do_set_slide_mpp(synthetic_slide, 0.5)  # corrected: no longer upsampled
    job = split(job, pending)
    assert job.status == "running" and "upsampled" not in job.provenance
