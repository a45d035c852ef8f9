"""A job reads tiles at its model's resolution unless it sets working_mpp: every job read them at 0.5 µm,
so a 0.25 µm model was fed tiles upsampled ×2. Classic keeps 0.5. SYNTHETIC slide, tiny checkpoints."""

import pytest
from django.test import override_settings

from analysis import registry
from tests.analysis.test_registry import tiny_checkpoint
from workers import queue
from workers.services import JobError, do_start_job

pytestmark = pytest.mark.django_db(transaction=True)
PARAMS = {"batch_size": 4, "tile_px": 256}


@pytest.fixture
def fine_model(media_root):
    return registry.register_checkpoint(tiny_checkpoint(media_root / "fine.pt", mpp=0.25), "fine-v1")


def started(slide, **kwargs):
    with queue.collecting() as pending:
        job = do_start_job(slide, research=True, **kwargs)
        queue.run(*pending.pop(0))  # split
    job.refresh_from_db()
    return job


def test_a_model_job_reads_tiles_at_the_models_resolution(synthetic_slide, fine_model, media_root):
    job = started(synthetic_slide, detector=fine_model.name, parameters=PARAMS)
    assert job.parameters["working_mpp"] == 0.25
    file_job = started(synthetic_slide, detector=str(media_root / "fine.pt"), parameters=PARAMS)
    assert file_job.provenance["kind"] == "checkpoint-file" and file_job.parameters["working_mpp"] == 0.25
    classic = started(synthetic_slide, detector="classic", parameters=PARAMS)
    assert "working_mpp" not in classic.parameters  # 0.5 (workers.pipeline.DEFAULTS)
    assert job.tiles_total > 2 * classic.tiles_total  # the slide cut at twice the resolution
    chosen = started(synthetic_slide, detector=fine_model.name, parameters={**PARAMS, "working_mpp": 0.5})
    assert chosen.parameters["working_mpp"] == 0.5 and chosen.tiles_total == classic.tiles_total


@override_settings(PDL1_JOB_MAX_TILES=20)
def test_the_tile_count_is_bounded_at_the_models_resolution(synthetic_slide, fine_model):
    with queue.collecting():
        do_start_job(synthetic_slide, detector="classic")  # 16 tiles at 0.5 µm
        with pytest.raises(JobError, match="more than the limit"):
            do_start_job(synthetic_slide, detector=fine_model.name, research=True)  # 49 at 0.25 µm
