"""analysis.detectors: one interface; the model detector rescales, tiles and maps back to input pixels."""

import numpy as np
import pytest

from analysis import detectors
from analysis.detectors import ClassicDetector, Detector, ModelDetector, load_detector
from analysis.nets import DetectorConfig, build_detector, save_checkpoint
from analysis.synthetic import render_field


def local_model():
    """A 'network' with a 9x9 receptive field: foreground = blurred darkness.

    Its output at a pixel depends only on nearby pixels, so tiling with enough
    overlap must reproduce the whole-image result exactly.
    """
    import torch
    from torch import nn

    class Dark(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.exp(-(torch.arange(9.0) - 4) ** 2 / 8)
            self.register_buffer("kernel", (g[:, None] * g[None, :] / g.sum() ** 2)[None, None])

        def forward(self, x):  # x = rgb / 255 (mean 0, std 1 in the config)
            dark = torch.nn.functional.conv2d(1 - x.mean(1, keepdim=True), self.kernel, padding=4)
            dab = x[:, 2:3] - x[:, 0:1]  # brown pixels: more red than blue
            fg = 40 * (dark - 0.25)
            return torch.cat([torch.zeros_like(fg), fg + dab, fg - dab], dim=1)

    return Dark().eval()


def local_config(mpp=0.5):
    return DetectorConfig(arch="unet", mpp=mpp, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def test_classic_detector_follows_the_protocol():
    f = render_field(size=(128, 128), mpp=0.5, seed=1)
    detector = ClassicDetector()
    assert isinstance(detector, Detector) and detector.working_mpp is None
    found = detector.detect(f.rgb, 0.5)
    assert len(found) > 0 and found.xy.shape == (len(found), 2)
    assert set(np.unique(found.labels)) <= {1, 2}
    assert ClassicDetector(compartment="nucleus").version == "classic-nucleus"


def test_tiling_matches_whole_image_without_duplicates():
    rgb = render_field(size=(200, 200), mpp=0.5, seed=4, density=4000).rgb
    whole = ModelDetector(local_model(), local_config(), tile=512).detect(rgb, 0.5)
    tiled = ModelDetector(local_model(), local_config(), tile=128, overlap=32).detect(rgb, 0.5)
    assert detectors._tile_starts(200, 128, 32) == [0, 72]  # 2 x 2 tiles
    assert len(whole) > 10
    assert len(tiled) == len(whole)
    order_w, order_t = np.lexsort(whole.xy.T), np.lexsort(tiled.xy.T)
    np.testing.assert_allclose(tiled.xy[order_t], whole.xy[order_w], atol=1e-3)
    np.testing.assert_array_equal(tiled.labels[order_t], whole.labels[order_w])
    d = np.linalg.norm(tiled.xy[:, None] - tiled.xy[None], axis=-1) + np.eye(len(tiled)) * 1e9
    assert d.min() >= 3.0 / 0.5  # nothing within the NMS radius, across tile borders included


def discs(size, centres, radius):
    """White field with dark round 'nuclei' at known sub-pixel centres."""
    yy, xx = np.mgrid[:size, :size]
    rgb = np.full((size, size, 3), 245, np.uint8)
    for x, y in centres:
        rgb[(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = (70, 50, 110)
    return rgb


def test_points_are_in_input_pixels_when_resolutions_differ():
    rng = np.random.default_rng(0)
    centres = np.array([(x, y) for x in range(30, 240, 45) for y in range(30, 240, 45)], float)
    centres += rng.uniform(-0.5, 0.5, centres.shape)
    rgb = discs(256, centres, radius=14)  # 7 µm nuclei at 0.25 µm/px
    found = ModelDetector(local_model(), local_config(mpp=0.5), tile=64, overlap=24).detect(rgb, 0.25)
    assert len(found) == len(centres)
    nearest = np.linalg.norm(found.xy[:, None] - centres[None], axis=-1).min(axis=1)
    assert nearest.max() < 1.5  # px at 0.25 µm/px; at the model's 0.5 µm/px they would be ~2x off


@pytest.fixture
def resnet18_checkpoint(tmp_path):
    import torch

    torch.manual_seed(0)
    path = tmp_path / "r18.pt"
    save_checkpoint(path, build_detector("fcn", "resnet18"), DetectorConfig(arch="fcn", backbone="resnet18", mpp=0.5))
    return path


@pytest.mark.django_db
def test_untrained_resnet18_checkpoint_end_to_end(resnet18_checkpoint):
    detectors.clear_cache()
    detector = load_detector(str(resnet18_checkpoint))
    assert isinstance(detector, ModelDetector) and detector.working_mpp == 0.5
    assert load_detector(str(resnet18_checkpoint)) is detector  # cached per process
    detector.min_score = 0.0  # random weights: keep every peak so that there is something to check
    rgb = render_field(size=(160, 120), mpp=0.25, seed=3).rgb
    found = detector.detect(rgb, 0.25)
    assert found.xy.dtype == np.float32 and len(found) > 0
    # Input is 120 x 160 px at 0.25; the model saw 60 x 80 at 0.5; points come back in input pixels.
    assert found.xy[:, 0].max() > 80 and found.xy[:, 1].max() > 60
    assert found.xy[:, 0].max() < 120 and found.xy[:, 1].max() < 160 and found.xy.min() >= -0.5
    detectors.clear_cache()


@pytest.mark.django_db
def test_load_detector_names():
    assert isinstance(load_detector("classic"), ClassicDetector)
    assert load_detector("classic", compartment="nucleus").compartment == "nucleus"
    from analysis import registry

    with pytest.raises(registry.UnknownDetector):
        load_detector("no-such-model")


def test_tile_cores_partition_the_axis():
    for size, tile, overlap in [(200, 128, 32), (1000, 512, 64), (100, 512, 64), (513, 512, 64)]:
        starts = detectors._tile_starts(size, tile, overlap)
        cores = detectors._core_bounds(starts, min(tile, size), size)
        assert cores[0][0] == 0 and cores[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(cores, cores[1:]))
        # each core lies inside its tile, at least overlap/2 from an inner tile edge
        for s, (lo, hi) in zip(starts, cores):
            assert s <= lo and hi <= s + min(tile, size)
