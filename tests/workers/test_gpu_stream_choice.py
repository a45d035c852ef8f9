"""workers.pipeline streams a batch through workers.gpu_runtime only when the stream gives ModelDetector's points:
a tile that, resampled to the model's resolution, is larger than the detector's own tile is split by
ModelDetector.detect, and the stream (one forward pass per tile) would give other points.

SYNTHETIC slide, UNTRAINED tiny U-Net: only the equality of the two paths is tested.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest

from analysis import tiling
from analysis.detectors import ModelDetector
from analysis.synthetic_slide import write_pyramidal_tiff
from slideio.slidefile import open_slide
from tests.analysis.test_registry import tiny_checkpoint
from workers import pipeline


def _detector(mpp: float, tile: int = 512) -> ModelDetector:
    return ModelDetector(model=None, config=types.SimpleNamespace(mpp=mpp), device="cpu", tile=tile)


@pytest.mark.parametrize("tile_px,working_mpp,model_mpp,streams", [
    (512, 0.5, 0.5, True),
    (256, 0.5, 0.25, True),  # 512 px at the model's 0.25 µm: one forward pass, as ModelDetector's
    (512, 0.5, 0.25, False),  # 1024 px at 0.25 µm: ModelDetector.detect splits it, the stream would not
    (384, 0.5, 0.25, False),
    (1024, 0.25, 0.5, True),  # 512 px at the model's 0.5 µm
    (520, 0.5, 0.5, False),
])
def test_the_stream_is_used_for_tiles_the_detector_runs_in_one_pass(settings, tile_px, working_mpp, model_mpp,
                                                                    streams):
    settings.PDL1_GPU_STREAM = True
    params = {"tile_px": tile_px, "working_mpp": working_mpp}
    assert pipeline._use_gpu_stream(_detector(model_mpp), params) is streams


def test_a_job_at_another_mpp_than_its_model_gets_the_same_points_streamed_or_not(tmp_path, settings, monkeypatch):
    slide = write_pyramidal_tiff(tmp_path / "slide.tiff", size=(768, 768), mpp=0.5, seed=4, tile=256,
                                 compression="zlib", tissue_fraction=0.9)
    detector = ModelDetector.from_checkpoint(tiny_checkpoint(tmp_path / "fine.pt", mpp=0.25), device="cpu",
                                             min_score=0.3)
    monkeypatch.setattr(pipeline, "load_job_detector", lambda job, compartment: detector)
    params = {"tile_px": 384, "overlap_px": 32, "working_mpp": 0.5, "mpp": 0.5}  # 768 px at the model's 0.25 µm
    job = types.SimpleNamespace(parameters=params, provenance={}, slide=types.SimpleNamespace(path=slide.path, qc={}))
    handle = open_slide(slide.path)
    tiles = tiling.tile_grid(handle.level_dimensions, handle.level_downsamples, 0.5, 0.5, tile_px=384,
                             overlap_px=32)[:2]
    handle.close()
    batch = [dataclasses.asdict(t) for t in tiles]
    settings.PDL1_GPU_STREAM, settings.PDL1_GPU_READERS = False, 0
    on_cpu = pipeline.detect_batch(job, batch)
    settings.PDL1_GPU_STREAM = True  # a GPU worker: the stream where it gives the same points
    either = pipeline.detect_batch(job, batch)
    assert len(on_cpu.xy) > 0, "the untrained detector should find some points for the comparison to mean anything"
    np.testing.assert_array_equal(either.xy, on_cpu.xy)
    np.testing.assert_array_equal(either.labels, on_cpu.labels)
    np.testing.assert_array_equal(either.scores, on_cpu.scores)
