"""Detect and merge run with what the job recorded: the tissue threshold its own split found (the slide's
is overwritten by any later job's split on that slide), and classic's parameters as recorded when it was
queued (not the code's defaults after an upgrade). SYNTHETIC slide."""

import pytest

from analysis import classic
from analysis.choices import JobStatus
from workers import pipeline, queue
from workers.services import do_start_job

pytestmark = pytest.mark.django_db(transaction=True)
PARAMS = {"batch_size": 4, "tile_px": 256}


def test_detect_reads_the_tissue_threshold_its_own_split_found(synthetic_slide, monkeypatch):
    seen = []
    real = pipeline.tissue.on_tissue

    def on_tissue(rgb, xy, threshold_od=None):
        seen.append(threshold_od)
        return real(rgb, xy, threshold_od)

    monkeypatch.setattr(pipeline.tissue, "on_tissue", on_tissue)
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))  # split
        job.refresh_from_db()
        own = job.provenance["tissue_threshold_od"]
        synthetic_slide.refresh_from_db()
        assert own is not None and own == synthetic_slide.qc["tissue_threshold_od"]
        synthetic_slide.qc = {**synthetic_slide.qc, "tissue_threshold_od": own + 0.5}  # another job's split since
        synthetic_slide.save(update_fields=["qc"])
        queue.run(*pending.pop(0))  # a batch
    assert seen and set(seen) == {own}


def test_a_job_split_before_the_threshold_was_recorded_reads_the_slides(synthetic_slide):
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=PARAMS)
        queue.run(*pending.pop(0))
        job.refresh_from_db()
        job.provenance.pop("tissue_threshold_od")
        job.save()
        while pending:
            queue.run(*pending.pop(0))
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error


@pytest.mark.parametrize("compartment", ["membrane", "nucleus"])
def test_classic_runs_with_its_recorded_parameters_after_the_defaults_change(synthetic_slide, monkeypatch,
                                                                             compartment):
    with queue.collecting():
        job = do_start_job(synthetic_slide, detector="classic", parameters={**PARAMS, "compartment": compartment},
                             research=True)  # a PD-L1 slide read in the nucleus: research only
    recorded = job.provenance["parameters"]
    assert pipeline.load_job_detector(job, compartment).parameters() == recorded  # nothing changed: the same
    # an upgrade between queueing and detecting changes the defaults (the adaptive rule: at merge, below)
    monkeypatch.setitem(classic.DEFAULT_DETECTION_THRESHOLD, compartment, 0.5)
    monkeypatch.setitem(classic.DEFAULT_CUT, compartment, 0.3 if compartment == "nucleus" else classic.ADAPTIVE)
    detector = pipeline.load_job_detector(job, compartment)
    assert detector.parameters() == recorded
    assert pipeline._adaptive_classic(job, pipeline.job_parameters(job)) == (recorded["dab_threshold"] == "adaptive")


def test_the_slide_cut_follows_the_recorded_adaptive_rule(synthetic_slide, monkeypatch):
    def finished():
        with queue.collecting() as pending:
            job = do_start_job(synthetic_slide, detector="classic", parameters={**PARAMS, "compartment": "nucleus"},
                               research=True)
            while pending:
                queue.run(*pending.pop(0))
        job.refresh_from_db()
        assert job.status == JobStatus.DONE, job.error
        return job

    plain = finished()

    def upgrade_before_merge(job, files, real=pipeline.merge_job):
        with monkeypatch.context() as m:
            m.setitem(classic.ADAPTIVE_RULE, "nucleus", ("negative_population", 0.9, 0.95))
            return real(job, files)

    monkeypatch.setattr(pipeline, "merge_job", upgrade_before_merge)
    upgraded = finished()
    assert upgraded.summary["dab_threshold"] == plain.summary["dab_threshold"]
    assert upgraded.summary["counts"] == plain.summary["counts"]
