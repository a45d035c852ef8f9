"""What a job's result rests on stays the job's own: a late batch of a cancelled attempt never
reaches the retry's files, the merge uses the resolution the tiles were cut at, a Ki-67 slide is
read in the nucleus, and the dedupe radius cannot thin real nuclei. SYNTHETIC slide."""

import pytest

from analysis.choices import JobStatus
from analysis.detection_store import open_store
from analysis.models import AnalysisJob
from cases.services import do_set_slide_mpp
from workers import pipeline, queue
from workers.services import JobError, do_cancel_job, do_retry_job, do_start_job

pytestmark = pytest.mark.django_db(transaction=True)
PARAMS = {"batch_size": 4, "tile_px": 256, "overlap_px": 64}


def run_all(pending):
    while pending:
        queue.run(*pending.pop(0))


def finished(slide, parameters=PARAMS, between=None):
    """A job run through every stage; `between(func)` runs before each stage."""
    with queue.collecting() as pending:
        job = do_start_job(slide, detector="classic", parameters=parameters)
        while pending:
            func, args = pending.pop(0)
            if between:
                between(func)
            queue.run(func, args)
    job.refresh_from_db()
    return job


def test_a_late_batch_of_a_cancelled_attempt_leaves_the_retry_alone(synthetic_slide, media_root, monkeypatch):
    real = pipeline.detect_batch
    armed = {"once": True}
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # attempt 1: split
        first_batch = pending[0]
        pending.clear()

        def slow_batch(j, tiles):  # attempt 1's batch 0, still computing while the retry runs to its merge
            found = real(j, tiles)
            if armed.pop("once", False):
                do_cancel_job(j)
                do_set_slide_mpp(synthetic_slide, 0.45)  # the resolution was corrected before the retry
                do_retry_job(j)
                while pending and pending[0][0] != "workers.tasks.merge_job":
                    queue.run(*pending.pop(0))
            return found

        monkeypatch.setattr(pipeline, "detect_batch", slow_batch)
        queue.run(*first_batch)
        monkeypatch.setattr(pipeline, "detect_batch", real)
        run_all(pending)  # attempt 2's merge
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.attempt == 2
    assert "/attempt-2/" in job.result_file
    assert all("/attempt-2/" in f for f in job.batches.values_list("result_file", flat=True))
    clean = finished(synthetic_slide)  # the same slide and settings, no interference
    assert job.summary["counts"] == clean.summary["counts"]


def test_the_merge_uses_the_resolution_the_tiles_were_cut_at(synthetic_slide, media_root):
    plain = finished(synthetic_slide)

    def set_mpp_before_merge(func):
        if func == "workers.tasks.merge_job":
            do_set_slide_mpp(synthetic_slide, 0.25)

    moved = finished(synthetic_slide, between=set_mpp_before_merge)
    assert moved.provenance["tiled_at_mpp"] == plain.provenance["tiled_at_mpp"] == 0.5
    assert moved.summary["counts"] == plain.summary["counts"]
    with open_store(media_root / moved.result_file) as store:
        assert store.mpp == pytest.approx(0.5)


def test_a_ki67_slide_is_read_in_the_nucleus_unless_the_job_says_otherwise(synthetic_slide, media_root):
    synthetic_slide.marker = "Ki67"
    synthetic_slide.save()
    with queue.collecting():
        job = do_start_job(synthetic_slide, detector="classic")
        chosen = do_start_job(synthetic_slide, detector="classic", parameters={"compartment": "membrane"},
                              research=True)  # another compartment than the marker's: research only
    assert job.parameters["compartment"] == "nucleus"
    assert job.provenance["parameters"]["compartment"] == "nucleus"
    assert job.provenance["parameters"]["dab_threshold"] == "adaptive"
    assert chosen.parameters["compartment"] == "membrane"
    synthetic_slide.marker = "PD-L1"
    synthetic_slide.save()
    with queue.collecting():
        assert "compartment" not in do_start_job(synthetic_slide, detector="classic").parameters


@pytest.mark.parametrize("radius", [5.5, 10, 50])
def test_a_dedupe_radius_that_would_thin_real_nuclei_is_refused(synthetic_slide, radius):
    with pytest.raises(JobError, match="dedupe_radius_um must be a number from 0.1 to 5"):
        do_start_job(synthetic_slide, detector="classic", parameters={"dedupe_radius_um": radius})
    assert not AnalysisJob.objects.exists()


def test_a_batch_too_large_to_finish_within_its_lease_is_refused(synthetic_slide):
    with pytest.raises(JobError, match="lower batch_size or tile_px"):
        do_start_job(synthetic_slide, detector="classic", parameters={"tile_px": 4096, "batch_size": 256})
    with pytest.raises(JobError, match="lower batch_size or tile_px"):
        do_start_job(synthetic_slide, detector="classic", parameters={"tile_px": 2048, "batch_size": 17})
    assert not AnalysisJob.objects.exists()
    with queue.collecting():  # the bound itself is allowed
        do_start_job(synthetic_slide, detector="classic", parameters={"tile_px": 2048, "batch_size": 16})


def test_a_slide_with_pixels_that_are_not_square_is_refused(synthetic_slide):
    do_set_slide_mpp(synthetic_slide, 0.25, 0.5)
    with pytest.raises(JobError, match="pixels are not square"):
        do_start_job(synthetic_slide, detector="classic")
    assert not AnalysisJob.objects.exists()
    do_set_slide_mpp(synthetic_slide, 0.25, 0.2505)  # a scanner's rounding: allowed
    with queue.collecting():
        do_start_job(synthetic_slide, detector="classic")
