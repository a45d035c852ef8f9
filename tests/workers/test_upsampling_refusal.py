"""A clinical model job whose model would see tiles upsampled past UPSAMPLING_LIMIT over the slide's own pixels is
refused at start: a 0.25 µm model on a 0.5 µm slide counted nuclei on tiles enlarged x2 and the job completed.
Research runs (analyze_slide) still run, recorded in provenance ("upsampled": "x2.0"); classic, which has no
trained resolution, is recorded and never refused. No file is read: slides are rows, models tiny checkpoints."""

import pytest

from analysis import registry
from analysis.choices import ModelStatus
from analysis.models import AnalysisJob
from tests.analysis.test_registry import PDL1_HELD_OUT, promoted, tiny_checkpoint
from tests.viewer import SlideFactory
from workers import queue
from workers.services import JobError, do_start_job

pytestmark = pytest.mark.django_db(transaction=True)
PARAMS = {"tile_px": 256, "overlap_px": 32}


def clinical(media_root, name, mpp):
    version = registry.register_checkpoint(tiny_checkpoint(media_root / f"{name}.pt", seed=3, mpp=mpp), name,
                                           metrics={"synthetic": {"fields": 1}}, training_data=PDL1_HELD_OUT)
    version.set_status(ModelStatus.CLINICAL)
    version.save()
    return promoted(version)


def started(slide, **kwargs) -> AnalysisJob:
    with queue.collecting():
        job = do_start_job(slide, **kwargs)
    job.refresh_from_db()
    return job


def slide_at(personas, mpp):
    return SlideFactory(case=personas["case"], width=4000, height=3000, mpp_x=mpp, mpp_y=mpp)


def test_a_clinical_model_on_a_coarser_slide_is_refused(personas, media_root):
    fine = clinical(media_root, "fine-v1", 0.25)
    with pytest.raises(JobError, match=r"the slide's resolution is 0.5 µm/px, coarser than the 0.25 µm/px model "
                                       r"fine-v1 reads: it would count nuclei on tiles upsampled x2.0"):
        started(slide_at(personas, 0.5), detector=fine.name, parameters=PARAMS)
    with pytest.raises(JobError, match="upsampled x2.0"):  # a job's own mpp counts as the slide's
        started(slide_at(personas, 0.25), detector=fine.name, parameters={**PARAMS, "mpp": 0.5})
    with pytest.raises(JobError, match=r"working_mpp is 0.5 µm/px, .* upsampled x2.0"):  # resized by the model
        started(slide_at(personas, 0.25), detector=fine.name, parameters={**PARAMS, "working_mpp": 0.5})
    assert not AnalysisJob.objects.exists()


def test_the_active_default_model_is_refused_too(personas, media_root):
    slide = slide_at(personas, 0.5)
    fine = clinical(media_root, "fine-v1", 0.25)
    fine.activate("", slide.marker)
    assert registry.default_detector_name(slide.case.indication, slide.marker) == fine.name
    with pytest.raises(JobError, match="upsampled x2.0"):
        started(slide)


def test_within_the_tolerance_or_finer_a_clinical_model_runs(personas, media_root):
    fine = clinical(media_root, "fine-v1", 0.25)
    for mpp in (0.25, 0.2738, 0.2):  # 0.2738: a real scanner's "0.25 µm", 9.5 % coarser
        job = started(slide_at(personas, mpp), detector=fine.name, parameters=PARAMS)
        assert job.parameters["working_mpp"] == 0.25
        assert job.provenance.get("upsampled", "") == ("x1.1" if mpp == 0.2738 else "")


def test_research_runs_are_allowed_and_recorded(personas, media_root):
    fine = clinical(media_root, "fine-v1", 0.25)
    job = started(slide_at(personas, 0.5), detector=fine.name, parameters=PARAMS, research=True)
    assert job.provenance["upsampled"] == "x2.0"
    loose = started(slide_at(personas, 0.5), detector=str(tiny_checkpoint(media_root / "loose.pt", mpp=0.25)),
                    parameters=PARAMS, research=True)
    assert loose.provenance["kind"] == "checkpoint-file" and loose.provenance["upsampled"] == "x2.0"


def test_classic_is_recorded_but_not_refused(personas):
    job = started(slide_at(personas, 0.65), detector="classic", parameters=PARAMS)  # the demo slide's resolution
    assert job.provenance["upsampled"] == "x1.3"
    assert "upsampled" not in started(slide_at(personas, 0.5), detector="classic", parameters=PARAMS).provenance
