"""One GPU was counted as up to three entries in a job's detect_compute: the tile-by-tile path described "cuda" as
"cuda (NVIDIA H200)", the stream "cuda:0 (NVIDIA H200)", and a stream batch with no tiles recorded the bare "cuda".
Each is now the device with its index, described once. No GPU here: its index and name are mocked."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from analysis.detectors import ModelDetector
from workers import gpu_runtime, pipeline


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"NVIDIA H200 #{torch.device(device).index}")
    monkeypatch.setattr(gpu_runtime, "configure_deterministic_cuda", lambda: None)


def test_every_name_of_one_gpu_is_one_label(one_gpu):
    for name in ("cuda", "cuda:0", "cuda:0 (NVIDIA H200 #0)"):
        assert pipeline.compute_device_label(name) == "cuda:0 (NVIDIA H200 #0)"
    assert pipeline.compute_device_label("cuda:1") == "cuda:1 (NVIDIA H200 #1)"  # another GPU stays apart
    assert pipeline.compute_device_label("cpu") == "cpu"


def test_the_paths_count_one_gpu_once(one_gpu, monkeypatch):
    tile_by_tile = ModelDetector(model=None, config=types.SimpleNamespace(mpp=0.5), device="cuda")
    device, precision = pipeline._tile_by_tile_compute(tile_by_tile)

    # The stream: a batch it computed, and one with no tiles (its device never prepared: the bare name).
    monkeypatch.setattr(pipeline, "load_job_detector", lambda job, compartment: tile_by_tile)
    monkeypatch.setattr(pipeline, "open_job_slide", lambda job: types.SimpleNamespace(level_downsamples=(1.0,)))
    monkeypatch.setattr(pipeline, "_use_gpu_stream", lambda detector, params: True)
    monkeypatch.setattr(pipeline, "stream_settings", lambda detector: {})
    labels = iter(["cuda:0 (NVIDIA H200 #0)", "cuda"])

    def detect_tiles(*args, **kwargs):
        return types.SimpleNamespace(xy=np.zeros((0, 2), np.float32), labels=np.zeros(0, np.int8),
                                     scores=np.zeros(0, np.float32), device=next(labels), precision="bf16")

    monkeypatch.setattr(gpu_runtime, "stream_detector_for",
                        lambda detector, **kwargs: types.SimpleNamespace(detect_tiles=detect_tiles))
    job = types.SimpleNamespace(parameters={}, provenance={}, slide=types.SimpleNamespace(path="unused", qc={}))
    provenance = {}
    for found in [pipeline.BatchDetections(np.zeros((0, 2), np.float32), np.zeros(0, np.int8),
                                           np.zeros(0, np.float32), 0.0, device=device, precision=precision),
                  pipeline.detect_batch(job, []), pipeline.detect_batch(job, [])]:
        provenance = pipeline.record_batch_compute(provenance, found)
    assert provenance["detect_compute"] == [{"device": "cuda:0 (NVIDIA H200 #0)", "precision": "bf16", "batches": 3}]
