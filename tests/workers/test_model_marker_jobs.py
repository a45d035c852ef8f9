"""A clinical job runs a model only on a slide of the marker it was measured on (ModelVersion.marker_refusal):
a Ki-67 model computed a PD-L1 TPS that could be signed, being offered and accepted on any slide. A model whose
marker is unknown (registered before cards recorded held-out fields, or trained on a folder whose manifest
records no marker) was validated for no marker: it runs on no clinical slide. The research CLI still runs
them, and such a result never feeds a signed report."""

import pytest

from analysis import registry
from analysis.choices import Marker, ModelStatus
from analysis.models import ModelVersion
from tests.analysis.test_registry import tiny_checkpoint
from tests.viewer import SlideFactory
from workers import queue
from workers.services import JobError, detector_choices, do_start_job

pytestmark = pytest.mark.django_db(transaction=True)


def clinical(media_root, name, sources, seed):
    """Registered, then released for clinical use (as do_promote leaves it)."""
    version = registry.register_checkpoint(tiny_checkpoint(media_root / f"{name}.pt", seed=seed), name,
                                           metrics={"x": {}}, training_data={"synthetic": False, "sources": sources})
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelStatus.CLINICAL)
    version.refresh_from_db()
    return version


def held_out(spec, **extra):
    return {"source": spec, "synthetic": False, "fields": {"train": 2, "val": 1}, **extra}


@pytest.fixture
def models(media_root):
    return {"ki67": clinical(media_root, "ki67-v1", [held_out("db:Ki67")], seed=5),
            "pdl1": clinical(media_root, "pdl1-v1", [held_out("db:PD-L1")], seed=6),
            "unknown": clinical(media_root, "older-v1", [], seed=7)}


def started(slide, **kwargs):
    with queue.collecting():
        job = do_start_job(slide, **kwargs)
    job.refresh_from_db()
    return job


def test_a_ki67_model_is_neither_offered_nor_run_on_a_pd_l1_slide(personas, models):
    pdl1_slide = SlideFactory(case=personas["case"], marker=Marker.PDL1)
    ki67_slide = SlideFactory(case=personas["case"], marker=Marker.KI67)
    offered = {slide.marker: {c["value"] for c in detector_choices(slide)} for slide in (pdl1_slide, ki67_slide)}
    assert "pdl1-v1" in offered[Marker.PDL1] and "ki67-v1" not in offered[Marker.PDL1]
    assert "ki67-v1" in offered[Marker.KI67] and "pdl1-v1" not in offered[Marker.KI67]
    with pytest.raises(JobError, match="ki67-v1 was measured on Ki67 fields: it cannot analyse a slide stained "
                                       "for PD-L1"):
        started(pdl1_slide, detector="ki67-v1")
    with pytest.raises(JobError, match="pdl1-v1 was measured on PD-L1 fields"):
        started(ki67_slide, detector=str(models["pdl1"].pk))  # by id too
    job = started(ki67_slide, detector="ki67-v1")
    assert job.model_version == models["ki67"] and job.research_use_reason() == ""
    job = started(pdl1_slide, detector="pdl1-v1")
    assert job.model_version == models["pdl1"] and job.research_use_reason() == ""


def test_a_model_of_unknown_marker_runs_on_no_clinical_slide(personas, models):
    for marker in (Marker.PDL1, Marker.KI67):
        slide = SlideFactory(case=personas["case"], marker=marker)
        assert "older-v1" not in [c["value"] for c in detector_choices(slide)]
        with pytest.raises(JobError, match="older-v1 is of unknown marker"):
            started(slide, detector="older-v1")


def test_the_research_cli_runs_them_but_the_result_is_never_signed(personas, models):
    slide = SlideFactory(case=personas["case"], marker=Marker.PDL1)
    for key in ("ki67", "unknown"):
        job = started(slide, detector=models[key].name, research=True)
        assert job.model_version == models[key]
        assert "cannot feed a signed report" in job.research_use_reason()


def test_a_folder_without_a_marker_is_not_queued_for_training(tmp_path):
    from workers.training import TrainingError, do_queue_training
    from tests.workers.synthetic_dataset import write_synthetic_dataset

    folder = write_synthetic_dataset(tmp_path / "no-marker", marker=None)
    with pytest.raises(TrainingError, match="'no-marker'.*'marker'"):
        do_queue_training(group="g", dataset=str(folder), name="no-marker-v1", steps=2, backbone="resnet18", mpp=0.5)
