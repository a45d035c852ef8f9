"""A model giving NaN or infinite probabilities fails the batch (and so the job) with a reason naming the tiles,
on the CPU path and through the GPU stream (its CPU fallback): those tiles' cells used to vanish and the job
completed with a lower count. SYNTHETIC slide."""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch

from analysis import tiling
from analysis.detectors import ModelDetector
from analysis.synthetic_slide import write_pyramidal_tiff
from slideio.slidefile import open_slide
from workers import pipeline


class NanOnDarkTiles(torch.nn.Module):
    """Background everywhere, NaN on tiles darker than `cut` (mean of the normalised input)."""

    def __init__(self, cut: float):
        super().__init__()
        self.cut = cut

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 3, x.shape[2], x.shape[3])
        logits[:, 0] = 10.0
        logits[x.mean(dim=(1, 2, 3)) < self.cut] = float("nan")
        return logits


@pytest.fixture
def job_and_tiles(tmp_path, monkeypatch):
    slide = write_pyramidal_tiff(tmp_path / "slide.tiff", size=(768, 768), mpp=0.5, seed=2, tile=256,
                                 compression="zlib", tissue_fraction=0.5)
    handle = open_slide(slide.path)
    tiles = tiling.tile_grid(handle.level_dimensions, handle.level_downsamples, 0.5, 0.5, tile_px=256, overlap_px=32)
    means = [float(tiling.read_tile(handle, t).mean()) / 255 for t in tiles]
    handle.close()
    cut = sorted(means)[2] + 1e-6  # the three darkest tiles give NaN
    dark = sorted(t.index for t, m in zip(tiles, means) if m < cut)
    assert len(dark) == 3
    config = types.SimpleNamespace(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), mpp=0.5)
    detector = ModelDetector(model=NanOnDarkTiles(cut), config=config, device="cpu")
    monkeypatch.setattr(pipeline, "load_job_detector", lambda job, compartment: detector)
    job = types.SimpleNamespace(parameters={"tile_px": 256, "overlap_px": 32, "mpp": 0.5}, provenance={},
                                slide=types.SimpleNamespace(path=slide.path, qc={}))
    return job, [dataclasses.asdict(t) for t in tiles], dark


@pytest.mark.parametrize("stream", [False, True])
def test_non_finite_outputs_fail_the_batch_naming_the_tiles(job_and_tiles, settings, stream):
    job, batch, dark = job_and_tiles
    settings.PDL1_GPU_STREAM, settings.PDL1_GPU_READERS, settings.PDL1_GPU_BATCH = stream, 0, len(batch)
    with pytest.raises(pipeline.PipelineError) as raised:
        pipeline.detect_batch(job, batch)
    assert str(raised.value).startswith(f"the model produced non-finite outputs on tiles {', '.join(map(str, dark))} ")
    clean = [t for t in batch if t["index"] not in dark]
    assert len(pipeline.detect_batch(job, clean).xy) == 0  # the other tiles: background, no error
