"""Each batch records the device and precision it was computed with (its result file), and the job every
combination its batches used (provenance "detect_compute"): a CUDA worker runs networks in bf16 and a CPU
one in fp32, and their points can differ. CUDA itself is not available here: its settings are checked
through the calls that make them. SYNTHETIC slide."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch

from analysis import tiling
from analysis.choices import JobStatus
from analysis.detectors import ModelDetector
from analysis.synthetic_slide import write_pyramidal_tiff
from slideio.slidefile import open_slide
from tests.analysis.test_registry import tiny_checkpoint
from workers import gpu_runtime, pipeline, queue
from workers.gpu_runtime import TileStreamDetector
from workers.services import do_retry_job, do_start_job


def test_cuda_is_set_up_without_autotuning_and_with_deterministic_algorithms(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        gpu_runtime.configure_deterministic_cuda()
        assert torch.backends.cudnn.benchmark is False and torch.backends.cudnn.deterministic is True
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()  # a missing kernel warns, never fails a job
        import os

        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_the_precision_each_path_runs_in():
    config = types.SimpleNamespace(mean=(0, 0, 0), std=(1, 1, 1), mpp=0.5)
    assert TileStreamDetector(None, config, device="cuda:0").precision == "bf16"
    assert TileStreamDetector(None, config, device="cuda:0", autocast=False).precision == "fp32"
    assert TileStreamDetector(None, config, device="cpu").precision == "fp32"
    assert gpu_runtime.network_precision("cuda") == "bf16" and gpu_runtime.network_precision("cpu") == "fp32"


def test_the_tile_by_tile_path_on_cuda_records_the_gpu_and_sets_it_up(monkeypatch):
    calls = []
    monkeypatch.setattr(gpu_runtime, "configure_deterministic_cuda", lambda: calls.append("deterministic"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    detector = ModelDetector(model=None, config=types.SimpleNamespace(mpp=0.5), device="cuda:0")
    assert pipeline._tile_by_tile_compute(detector) == ("cuda:0 (NVIDIA H200)", "bf16")
    assert calls == ["deterministic"]
    on_cpu = ModelDetector(model=None, config=types.SimpleNamespace(mpp=0.5), device="cpu")
    assert pipeline._tile_by_tile_compute(on_cpu) == ("cpu", "fp32") and calls == ["deterministic"]


@pytest.fixture
def model_job(tmp_path, monkeypatch):
    slide = write_pyramidal_tiff(tmp_path / "slide.tiff", size=(512, 512), mpp=0.5, seed=2, tile=256,
                                 compression="zlib", tissue_fraction=0.9)
    detector = ModelDetector.from_checkpoint(tiny_checkpoint(tmp_path / "m.pt"), device="cpu")
    monkeypatch.setattr(pipeline, "load_job_detector", lambda job, compartment: detector)
    handle = open_slide(slide.path)
    tiles = tiling.tile_grid(handle.level_dimensions, handle.level_downsamples, 0.5, 0.5, tile_px=256, overlap_px=32)
    handle.close()
    job = types.SimpleNamespace(pk=1, attempt=1, parameters={"tile_px": 256, "overlap_px": 32, "mpp": 0.5},
                                provenance={}, slide=types.SimpleNamespace(path=slide.path, qc={}))
    return job, [dataclasses.asdict(t) for t in tiles[:2]]


@pytest.mark.parametrize("stream", [False, True])
def test_a_batch_records_its_device_and_precision_in_its_file(model_job, settings, tmp_path, stream):
    job, batch = model_job
    settings.PDL1_GPU_STREAM, settings.PDL1_GPU_READERS, settings.MEDIA_ROOT = stream, 0, str(tmp_path / "media")
    found = pipeline.detect_batch(job, batch)
    assert (found.device, found.precision) == ("cpu", "fp32")
    name = pipeline.write_batch_file(job, 0, found)
    with np.load(tmp_path / "media" / name) as data:
        assert (str(data["device"]), str(data["precision"])) == ("cpu", "fp32")
        assert not data["device"].dtype.hasobject  # read back without pickle


def test_the_job_counts_batches_per_device_and_precision():
    def found(device, precision):
        return pipeline.BatchDetections(np.zeros((0, 2), np.float32), np.zeros(0, np.int8), np.zeros(0, np.float32),
                                        0.0, device=device, precision=precision)

    provenance = {"kind": "model"}
    for batch in [found("cuda:0 (NVIDIA H200)", "bf16"), found("cpu", "fp32"), found("cuda:0 (NVIDIA H200)", "bf16")]:
        provenance = pipeline.record_batch_compute(provenance, batch)
    assert provenance == {"kind": "model", "detect_compute": [
        {"device": "cpu", "precision": "fp32", "batches": 1},
        {"device": "cuda:0 (NVIDIA H200)", "precision": "bf16", "batches": 2}]}


def _run(pending):
    while pending:
        queue.run(*pending.pop(0))


@pytest.mark.django_db(transaction=True)
def test_a_job_records_what_its_own_attempts_batches_ran_on(synthetic_slide, monkeypatch):
    real = pipeline.detect_batch
    calls = []

    def second_fails(job, tiles):
        calls.append(1)
        if len(calls) == 2:
            raise pipeline.PipelineError("a damaged tile")
        return real(job, tiles)

    monkeypatch.setattr(pipeline, "detect_batch", second_fails)
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters={"batch_size": 4, "tile_px": 256})
        _run(pending)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.provenance["detect_compute"] == [{"device": "cpu", "precision": pipeline.CLASSIC_PRECISION,
                                                 "batches": 1}]
    monkeypatch.setattr(pipeline, "detect_batch", real)
    with queue.collecting() as pending:
        do_retry_job(job)
        _run(pending)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    # The retry's batches only: the failed attempt's batch is not counted again.
    assert job.provenance["detect_compute"] == [{"device": "cpu", "precision": pipeline.CLASSIC_PRECISION,
                                                 "batches": job.batches_total}]
