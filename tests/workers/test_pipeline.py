"""The split → detect → merge pipeline on a SYNTHETIC slide, run through the task functions."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from analysis.choices import BatchStatus, JobStatus
from analysis.detection_store import open_store
from analysis.models import AnalysisJob, JobBatch
from workers import pipeline, queue, tasks
from workers.services import JobError, do_cancel_job, do_retry_job, do_start_job

pytestmark = pytest.mark.django_db(transaction=True)

PARAMS = {"batch_size": 4, "tile_px": 256}


def run_all(pending):
    while pending:
        func, args = pending.pop(0)
        queue.run(func, args)


def start(slide, **kwargs):
    with queue.collecting() as pending:
        job = do_start_job(slide, detector="classic", parameters=PARAMS, **kwargs)
        run_all(pending)
    job.refresh_from_db()
    return job


def test_job_runs_to_done_with_counts_tps_and_stored_detections(synthetic_slide, media_root, synthetic_slide_file):
    job = start(synthetic_slide)
    assert job.status == JobStatus.DONE, job.error
    assert job.tiles_done == job.tiles_total > 0 and job.batches_done == job.batches_total
    counts = job.summary["counts"]
    truth = synthetic_slide_file.labels
    assert abs(counts["positive"] + counts["negative"] - len(truth)) < 0.15 * len(truth)
    true_tps = 100 * np.mean(truth == 1)
    assert abs(job.summary["tps"] - true_tps) < 10
    store = open_store(media_root / job.result_file)
    assert len(store) == job.summary["detections"]
    assert set(job.timings) >= {"split", "detect", "merge"} and job.tissue_area_mm2 > 0


def test_rerunning_a_batch_replaces_its_result_and_never_duplicates(synthetic_slide, media_root, monkeypatch):
    real, files = pipeline.detect_batch, []

    def lease_lost_meanwhile(job, tiles):  # its lease runs out while it computes: another worker runs it too
        if not files:
            files.append(None)
            JobBatch.objects.filter(job=job, index=args[1]).update(deadline=timezone.now() - timedelta(seconds=1))
            with monkeypatch.context() as other_worker:
                other_worker.setattr(tasks, "_own_leases", set())
                queue.run(func, args)
            files.append(np.load(media_root / JobBatch.objects.get(job=job, index=args[1]).result_file)["xy"])
        return real(job, tiles)

    monkeypatch.setattr(pipeline, "detect_batch", lease_lost_meanwhile)
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split
        func, args = pending.pop(0)
        queue.run(func, args)
        batch = JobBatch.objects.get(job=job, index=args[1])
        again = np.load(media_root / batch.result_file)["xy"]
        np.testing.assert_array_equal(files[1], again)
        assert len(list((media_root / batch.result_file).parent.glob("batch-*.npz"))) == 1
        job.refresh_from_db()
        assert job.batches_done == 1 and job.tiles_done == len(batch.tiles) and batch.attempts == 2


def test_cancel_stops_the_remaining_batches(synthetic_slide):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split
        queue.run(*pending.pop(0))  # one batch
        do_cancel_job(job)
        run_all(pending)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert JobBatch.objects.filter(job=job, status=BatchStatus.DONE).count() == 1
    with pytest.raises(JobError):
        do_cancel_job(job)


def test_unreadable_slide_fails_the_job_with_a_clear_message(synthetic_slide, media_root):
    path = media_root / synthetic_slide.file.name
    path.write_bytes(path.read_bytes()[:5000])
    from workers.pipeline import _open_cached

    _open_cached.cache_clear()
    job = start(synthetic_slide)
    assert job.status == JobStatus.FAILED and "cannot be read" in job.error


def test_no_tissue_fails_the_job(white_slide):
    job = start(white_slide)
    assert job.status == JobStatus.FAILED and job.error == "no tissue found on the slide"


def test_failed_job_can_be_retried(white_slide, media_root):
    job = start(white_slide)
    with queue.collecting() as pending:
        job = do_retry_job(job)
        assert job.status == JobStatus.QUEUED and job.attempt == 2
        run_all(pending)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.attempt == 2  # the same blank slide fails again


def test_slide_without_mpp_cannot_start(db, tmp_path):
    from PIL import Image

    from cases.services import IngestSource, do_ingest_slide

    path = tmp_path / "field.png"
    Image.new("RGB", (300, 300), "white").save(path)
    slide = do_ingest_slide([IngestSource(name=path.name, path=path)]).slide
    with pytest.raises(JobError, match="no resolution"):
        do_start_job(slide, detector="classic")
    assert AnalysisJob.objects.count() == 0


@pytest.mark.parametrize("params,message", [({"tile_px": -1}, "from 64 to 4096"), ({"colour": 1}, "unknown"),
                                            ({"compartment": "cytoplasm"}, "compartment")])
def test_bad_parameters_are_refused(synthetic_slide, params, message):
    with pytest.raises(JobError, match=message):
        do_start_job(synthetic_slide, detector="classic", parameters=params)
    assert AnalysisJob.objects.count() == 0


def test_overdue_batches_are_requeued(synthetic_slide):
    from datetime import timedelta

    from django.utils import timezone

    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split: batches queued
        pending.clear()  # the queued tasks are lost (a killed worker, a Redis restart)
        JobBatch.objects.filter(job=job, index=0).update(deadline=timezone.now() - timedelta(seconds=1))
        assert tasks.requeue_overdue_batches() == 1
        assert pending == [("workers.tasks.detect_batch", (job.pk, 0))]


def test_progress_events_are_sent_after_commit(synthetic_slide, monkeypatch):
    from django.db import transaction

    sent = []
    monkeypatch.setattr("workers.progress._send", lambda groups, event: sent.append((groups, event)))
    with queue.collecting() as pending:
        with transaction.atomic():
            job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
            assert sent == []  # the transaction that queued the job has not committed: nothing is sent
        assert [event["state"]["status"] for _, event in sent] == ["queued"]  # sent on commit
        run_all(pending)
    statuses = [event["state"]["status"] for _, event in sent]
    assert statuses[0] == "queued" and statuses[-1] == "done" and "running" in statuses
    assert all(groups == [f"job-{job.pk}", f"slide-{synthetic_slide.pk}"] for groups, _ in sent)
    assert any("points" in event for _, event in sent)


def test_the_slide_positivity_cut_is_read_inside_the_drawn_regions(synthetic_slide, media_root, personas,
                                                                    monkeypatch):
    """The adaptive cut is taken at merge from the cells the slide's regions count: cells in an
    excluded area no longer move the cut of the counted ones. A result whose cut was read from other cells
    than the regions now drawn says so (viewer, report), until the analysis is run again."""
    from analysis.regions import regions_from_pairs
    from viewer.regions import do_add_region
    from viewer.scores import job_scores
    from analysis import classic
    from workers import pipeline

    # PD-L1's compartment (the membrane: a report states no other) read with an adaptive cut.
    monkeypatch.setitem(classic.DEFAULT_CUT, "membrane", classic.ADAPTIVE)
    with queue.collecting() as pending:
        first = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        run_all(pending)
    first.refresh_from_db()
    assert first.status == JobStatus.DONE, first.error
    assert first.summary["dab_threshold_regions"] == "" and job_scores(first)["cut_note"] == ""
    width, height = synthetic_slide.width, synthetic_slide.height
    excluded = [[0, 0], [width // 2, 0], [width // 2, height], [0, height]]
    do_add_region(first, personas["pathologist"], {"base_version": 0, "kind": "necrosis", "vertices": excluded})
    note = job_scores(first)["cut_note"]
    assert "read from the whole slide" in note and "re-run the analysis" in note
    from cases.reports import do_create_draft, fhir_bundle

    draft = do_create_draft(personas["case"], first, personas["pathologist"])  # what a report would state
    assert draft.scores["tps"]["cut_note"] == note and note in fhir_bundle(draft)["entry"][0]["resource"]["conclusion"]
    from cases.models import ReportError
    from cases.reports import do_sign

    with pytest.raises(ReportError, match="run again"):  # not signed on a cut the system says to read again
        do_sign(draft, personas["pathologist"], "pw-for-tests-123")

    read_from = []
    real = pipeline.adaptive_cut
    monkeypatch.setattr(pipeline, "adaptive_cut", lambda values, *rule: read_from.append(len(values)) or real(values, *rule))
    with queue.collecting() as pending:
        again = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        run_all(pending)
    again.refresh_from_db()
    assert again.status == JobStatus.DONE, again.error
    store = open_store(media_root / again.result_file)
    counted = regions_from_pairs([(False, excluded)]).mask(store.all().xy).sum()
    assert read_from == [counted] and 0 < counted < len(store)  # only the cells the regions count
    assert again.summary["dab_threshold_regions"] and job_scores(again)["cut_note"] == ""



def test_regions_that_count_no_cell_leave_no_re_run_note(synthetic_slide, media_root, personas):
    """The cut falls back to the whole slide when the regions count no cell; a re-run reads it the same way,
    so it records those regions and says nothing about re-running."""
    from viewer.regions import do_add_region
    from viewer.scores import job_scores

    with queue.collecting() as pending:
        first = do_start_job(synthetic_slide, detector="classic", parameters={**PARAMS, "compartment": "nucleus"},
                             research=True)
        run_all(pending)
    first.refresh_from_db()
    tiny = [[0, 0], [2, 0], [2, 2], [0, 2]]  # a corner of glass: no cell inside
    from analysis.regions import regions_from_pairs

    assert not regions_from_pairs([(True, tiny)]).mask(open_store(media_root / first.result_file).all().xy).any()
    do_add_region(first, personas["pathologist"], {"base_version": 0, "kind": "tumour", "vertices": tiny})
    with queue.collecting() as pending:
        again = do_start_job(synthetic_slide, detector="classic", parameters={**PARAMS, "compartment": "nucleus"},
                             research=True)
        run_all(pending)
    again.refresh_from_db()
    assert again.status == JobStatus.DONE and again.summary["dab_threshold_regions"]
    assert job_scores(again)["cut_note"] == ""
