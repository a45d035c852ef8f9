"""workers.gpu_runtime on CPU: the stream detector gives exactly ModelDetector's points, tile by tile.

SYNTHETIC slide (analysis.synthetic) and an UNTRAINED fcn-resnet18 checkpoint: only equality of the
two code paths is tested, not detection quality.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import torch  # pinned: a broken install fails here rather than skipping the module

from analysis import tiling, tissue  # noqa: E402
from analysis.detectors import ModelDetector  # noqa: E402
from analysis.nets import DetectorConfig, build_detector, save_checkpoint  # noqa: E402
from analysis.synthetic_slide import write_pyramidal_tiff  # noqa: E402
from slideio.slidefile import open_slide  # noqa: E402
from workers import gpu_runtime  # noqa: E402
from workers.gpu_runtime import TileStreamDetector, device_for_worker  # noqa: E402

TILE_PX, OVERLAP_PX, MPP = 256, 32, 0.5


@pytest.fixture(scope="module")
def slide_and_detector(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu-runtime")
    slide = write_pyramidal_tiff(folder / "synthetic.tiff", size=(640, 640), mpp=MPP, seed=3, tile=256,
                                 compression="zlib", tissue_fraction=0.9)
    torch.manual_seed(0)
    config = DetectorConfig(arch="fcn", backbone="resnet18", mpp=MPP)
    checkpoint = folder / "fcn-resnet18-untrained.pt"
    save_checkpoint(checkpoint, build_detector("fcn", "resnet18"), config)
    # min_score 0.4: an untrained net's foreground probability hovers around 2/3, so points exist.
    detector = ModelDetector.from_checkpoint(checkpoint, device="cpu", min_score=0.4)
    handle = open_slide(slide.path)
    tiles = tiling.tile_grid(handle.level_dimensions, handle.level_downsamples, slide_mpp=MPP, working_mpp=MPP,
                             tile_px=TILE_PX, overlap_px=OVERLAP_PX)
    downsamples = list(handle.level_downsamples)
    # Reference: workers.pipeline.detect_batch's loop with ModelDetector.detect, tile by tile.
    xys, labels, scores = [], [], []
    for tile in tiles:
        rgb = tiling.read_tile(handle, tile)
        found = detector.detect(rgb, MPP)
        xy0 = tiling.to_level0(tile, found.xy, downsamples)
        keep = tiling.in_core(tile, xy0) & tissue.on_tissue(rgb, found.xy)  # no point on glass
        xys.append(xy0[keep])
        labels.append(found.labels[keep])
        scores.append(found.scores[keep])
    handle.close()
    reference = (np.concatenate(xys).astype(np.float32), np.concatenate(labels).astype(np.int8),
                 np.concatenate(scores).astype(np.float32))
    return slide.path, detector, tiles, downsamples, reference


def _assert_same(result, reference):
    xy, labels, scores = reference
    assert len(xy) > 0, "the untrained detector should find some points for the comparison to mean anything"
    np.testing.assert_array_equal(result.xy, xy)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.scores, scores)


def test_stream_equals_model_detector_tile_by_tile(slide_and_detector):
    path, detector, tiles, downsamples, reference = slide_and_detector
    stream = TileStreamDetector.from_detector(detector, device="cpu", batch_size=3, readers=0)
    result = stream.detect_tiles(path, tiles, level_downsamples=downsamples, tile_mpp=MPP)
    assert result.tiles == len(tiles) and result.batches == -(-len(tiles) // 3)
    _assert_same(result, reference)


@pytest.mark.parametrize("readers", [1, 2])
def test_reader_pool_gives_the_same_points(slide_and_detector, readers):
    path, detector, tiles, downsamples, reference = slide_and_detector
    stream = TileStreamDetector.from_detector(detector, device="cpu", batch_size=4, readers=readers,
                                              prefetch_batches=1)
    try:
        result = stream.detect_tiles(path, tiles, level_downsamples=downsamples, tile_mpp=MPP)
        _assert_same(result, reference)
        # The pool is kept for the next call on the same slide, and gives the same again.
        pool = stream._pool
        again = stream.detect_tiles(path, tiles[:5], level_downsamples=downsamples, tile_mpp=MPP)
        assert stream._pool is pool
        n = int(sum(len(r) for r in [again.labels]))
        assert n <= len(reference[1])
    finally:
        stream.close()


def test_tile_dicts_and_empty_input(slide_and_detector):
    import dataclasses

    path, detector, tiles, downsamples, reference = slide_and_detector
    stream = TileStreamDetector.from_detector(detector, device="cpu", batch_size=8)
    empty = stream.detect_tiles(path, [], level_downsamples=downsamples)
    assert empty.xy.shape == (0, 2) and empty.labels.dtype == np.int8
    # Tiles as they come through a queued batch (JSON dicts, core as a list) work too.
    as_dicts = [{**dataclasses.asdict(t), "core": list(t.core)} for t in tiles]
    _assert_same(stream.detect_tiles(path, as_dicts, level_downsamples=downsamples), reference)


def test_unreadable_tile_raises_a_named_error(tmp_path, slide_and_detector):
    _, detector, tiles, downsamples, _ = slide_and_detector

    def broken_opener(path):
        class Broken:
            def read_region(self, *args):
                raise OSError("damaged JPEG")

        return Broken()

    stream = TileStreamDetector.from_detector(detector, device="cpu", opener=broken_opener)
    with pytest.raises(gpu_runtime.TileReadError, match="tile 0 could not be read: damaged JPEG"):
        stream.detect_tiles("unused", tiles[:1], level_downsamples=downsamples)


def test_compile_flag_sets_a_persistent_cache(tmp_path, monkeypatch, slide_and_detector, settings):
    from workers.pipeline import stream_settings

    path, detector, tiles, downsamples, reference = slide_and_detector
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TORCHINDUCTOR_FX_GRAPH_CACHE", "TRITON_CACHE_DIR",
                 "TORCHINDUCTOR_AUTOGRAD_CACHE"):
        monkeypatch.delenv(name, raising=False)
    settings.PDL1_COMPILE_CACHE, settings.PDL1_TORCH_COMPILE = str(tmp_path / "compile-cache"), True
    settings.PDL1_GPU_BATCH, settings.PDL1_TORCH_COMPILE_MODE = 6, "default"
    stream = TileStreamDetector.from_detector(detector, **{**stream_settings(detector), "device": "cpu"})
    assert stream.batch_size == 6 and stream.compile and stream.compile_mode == "default"
    assert stream.compile_cache == tmp_path / "compile-cache"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "compile-cache")
    assert os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "1"
    assert (tmp_path / "compile-cache").is_dir()
    # An explicit TORCHINDUCTOR_CACHE_DIR wins over the default folder.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "explicit"))
    assert gpu_runtime.configure_compile_cache() == tmp_path / "explicit"
    # Actually compiling a ResNet with Inductor takes minutes on this CI's CPUs: only check that
    # the compiled callable is what the stream would run (torch.compile is lazy), and that the
    # short last batch is padded to the compiled batch size.
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    stream._prepare()
    assert stream._infer is not None
    padded = stream._padded(torch.zeros((3, 8, 8, 3), dtype=torch.uint8))
    assert padded.shape[0] == stream.batch_size and int(padded[3:].min()) == 255


def test_compiled_stream_matches_when_compiled_quickly(slide_and_detector, tmp_path, monkeypatch):
    """Real torch.compile on CPU, only if PDL1_TEST_COMPILE=1 (it takes minutes on 2 shared cores)."""
    if os.environ.get("PDL1_TEST_COMPILE") != "1":
        pytest.skip("set PDL1_TEST_COMPILE=1 to run Inductor on CPU (slow)")
    path, detector, tiles, downsamples, reference = slide_and_detector
    monkeypatch.setenv(gpu_runtime.ENV_COMPILE_CACHE, str(tmp_path / "cache"))
    stream = TileStreamDetector.from_detector(detector, device="cpu", compile=True, compile_mode="default",
                                              batch_size=4)
    result = stream.detect_tiles(path, tiles, level_downsamples=downsamples)
    # Inductor may fuse differently from eager: same number of points within a few, same places mostly.
    assert abs(len(result.labels) - len(reference[1])) <= max(3, len(reference[1]) // 50)


@pytest.mark.parametrize(
    ("gpu_index", "worker", "count", "expected"),
    [
        (None, None, 0, "cpu"),
        (None, None, 1, "cuda:0"),
        (None, 3, 4, "cuda:3"),
        (None, 5, 4, "cuda:1"),
        (None, 2, 1, "cuda:0"),  # CUDA_VISIBLE_DEVICES=i: one visible GPU
        (1, 3, 2, "cuda:1"),
        (1, None, 0, "cpu"),
    ],
)
def test_device_for_worker(gpu_index, worker, count, expected):
    assert device_for_worker(worker, device_count=count, gpu_index=gpu_index) == expected


def test_device_for_worker_rejects_a_missing_gpu():
    with pytest.raises(ValueError, match="only 2 GPU"):
        device_for_worker(device_count=2, gpu_index=2)


def test_device_for_worker_reads_torch_when_no_count_given(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_for_worker(3) == "cuda:1"
