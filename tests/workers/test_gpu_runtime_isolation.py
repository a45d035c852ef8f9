"""workers.gpu_runtime: one stream's reads never mix with another stream's or with a failed call's.

A worker process keeps one TileStreamDetector per model (stream_detector_for), each with the reader pool
of the slide it read last; SYNTHETIC slides, a network that records what it is fed.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from analysis import tiling
from analysis.synthetic_slide import write_pyramidal_tiff
from slideio.slidefile import open_slide
from workers import gpu_runtime
from workers.gpu_runtime import TileStreamDetector

CONFIG = types.SimpleNamespace(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), mpp=0.5)


class Recorder(torch.nn.Module):
    """Keeps a copy of each batch it is fed (mean 0, std 1: the tiles' pixels / 255)."""

    def __init__(self, fail: bool = False):
        super().__init__()
        self.seen, self.fail = [], fail

    def forward(self, x):
        self.seen.append(x.clone())
        if self.fail:
            raise RuntimeError("the network failed")
        return torch.zeros(x.shape[0], 3, x.shape[2], x.shape[3])


@pytest.fixture(scope="module")
def two_slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-slides")
    a = write_pyramidal_tiff(folder / "a.tiff", size=(512, 512), mpp=0.5, seed=1, tile=256, compression="zlib")
    b = write_pyramidal_tiff(folder / "b.tiff", size=(512, 512), mpp=0.5, seed=99, tile=256, compression="zlib",
                             tissue_fraction=0.1)
    handle = open_slide(a.path)
    tiles = tiling.tile_grid(handle.level_dimensions, handle.level_downsamples, 0.5, 0.5, tile_px=256, overlap_px=32)
    handle.close()
    return a.path, b.path, tiles


def _as_fed(path, tile) -> torch.Tensor:
    handle = open_slide(path)
    try:
        rgb = tiling.read_tile(handle, tile)
    finally:
        handle.close()
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float()[None] / 255


def test_two_streams_in_one_process_each_read_their_own_slide(two_slides):
    # readers=0 (the PDL1_GPU_READERS default): job 1 (model M1, slide A) and job 2 (model M2, slide B)
    # in one worker; job 1's next batch read slide B's pixels through a module-wide reader state.
    path_a, path_b, tiles = two_slides
    net_1, net_2 = Recorder(), Recorder()
    first = TileStreamDetector(net_1, CONFIG, device="cpu", readers=0)
    second = TileStreamDetector(net_2, CONFIG, device="cpu", readers=0)
    try:
        first.detect_tiles(path_a, tiles[:1])
        second.detect_tiles(path_b, tiles[:1])
        first.detect_tiles(path_a, tiles[:1])
    finally:
        first.close()
        second.close()
    expected_a, expected_b = _as_fed(path_a, tiles[0]), _as_fed(path_b, tiles[0])
    assert not torch.equal(expected_a, expected_b)  # the two slides differ there
    torch.testing.assert_close(net_2.seen[0], expected_b, rtol=0, atol=0)
    for fed in net_1.seen:
        torch.testing.assert_close(fed, expected_a, rtol=0, atol=0)


def _damaged_at(location):
    """An opener whose slide cannot decode the region at `location` (level-0 px)."""

    def opener(path):
        real = open_slide(path)

        class Damaged:
            level_downsamples = real.level_downsamples

            def read_region(self, at, level, size):
                if tuple(at) == location:
                    raise OSError("damaged JPEG")
                return real.read_region(at, level, size)

        return Damaged()

    return opener


@pytest.mark.parametrize("readers", [0, 2])
def test_a_failed_call_closes_its_reader_pool(two_slides, readers):
    # Reads a failed call already sent keep writing into the shared slots: a next call on the same slide
    # that reused the pool could take one of them for its own tile. The pool is closed and a new one made.
    path_a, _, tiles = two_slides
    net = Recorder()
    stream = TileStreamDetector(net, CONFIG, device="cpu", readers=readers, batch_size=2, prefetch_batches=1,
                                opener=_damaged_at((tiles[0].x0, tiles[0].y0)))
    try:
        with pytest.raises(gpu_runtime.TileReadError, match=f"tile {tiles[0].index} could not be read"):
            stream.detect_tiles(path_a, tiles)
        assert stream._pool is None and stream._pool_key is None
        stream.detect_tiles(path_a, tiles[1:3])
        pool = stream._pool
        assert pool is not None
        torch.testing.assert_close(net.seen[-1], torch.cat([_as_fed(path_a, t) for t in tiles[1:3]]), rtol=0, atol=0)
    finally:
        stream.close()
    assert pool._pool is None and pool._local is None  # closed: no reader process or slide left


def test_a_network_failure_closes_the_reader_pool_too(two_slides):
    path_a, _, tiles = two_slides
    stream = TileStreamDetector(Recorder(fail=True), CONFIG, device="cpu", readers=1, batch_size=2)
    with pytest.raises(RuntimeError, match="the network failed"):
        stream.detect_tiles(path_a, tiles)
    assert stream._pool is None
