"""Points near the crop border in a training batch: every point whose disc overlaps the crop draws it,
centre inside or not, and a click outside the crop never becomes a point inside."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from analysis import augment
from analysis import training_batches
from analysis.training_batches import draw_batch, far_background_term, not_tumour_radius_px, uncertain_radius_px
from analysis.training_config import TrainConfig

CENTRE = (80.0, 12.0)  # near a corner of the 96 px field: 64 px crops keep it, cut it off close by, or far away
NEAR = (48.0, 48.0)  # in every 64 px crop of the field


def _coordinate_field(xy=(), labels=(), ignore_xy=(), uncertain_xy=()):
    """A 96 px field whose red and green values are each pixel's own column and row."""
    rgb = np.zeros((96, 96, 3), np.uint8)
    rgb[..., 0] = np.arange(96)[None, :]
    rgb[..., 1] = np.arange(96)[:, None]
    rgb[..., 2] = 200
    return SimpleNamespace(rgb=rgb, xy=np.reshape(np.asarray(xy, float), (-1, 2)), labels=np.asarray(labels, np.int64),
                           ignore_xy=np.reshape(np.asarray(ignore_xy, float), (-1, 2)),
                           uncertain_xy=np.reshape(np.asarray(uncertain_xy, float), (-1, 2)))


def _draw(sample, seed=0):
    """A batch without stain or scale jitter, and the field column and row each crop pixel shows."""
    config = TrainConfig(out_dir="unused", crop=64, batch_size=64, stain_sigma=0, stain_bias=0)
    batch = draw_batch([[sample]], config, np.random.default_rng(seed))
    det = config.detector_config()
    mean = torch.tensor(det.mean).view(1, 3, 1, 1)
    std = torch.tensor(det.std).view(1, 3, 1, 1)
    pixels = torch.round((batch.images * std + mean) * 255).permute(0, 2, 3, 1).numpy().astype(int)
    return config, batch, pixels[..., 0], pixels[..., 1]


def _distance(cols, rows, centre):
    """Distance of each crop pixel (by the field pixel it shows) from a point of the field: flips and
    rotations keep distances, so this is its distance from where the point lands in the crop."""
    return np.hypot(cols - centre[0], rows - centre[1])


def _shown(cols, rows, centre):
    return (cols == centre[0]) & (rows == centre[1])


def test_uncertain_nucleus_cut_off_by_the_crop_keeps_the_part_of_its_disc_inside():
    config, batch, cols, rows = _draw(_coordinate_field(uncertain_xy=[CENTRE]))
    radius = uncertain_radius_px(config)
    cut_but_reaching = 0
    for i in range(config.batch_size):
        disc = _distance(cols[i], rows[i], CENTRE) <= radius
        assert np.array_equal(batch.ignore[i], disc), i  # exactly the disc, wherever its centre is
        cut_but_reaching += bool(disc.any() and not _shown(cols[i], rows[i], CENTRE).any())
    assert cut_but_reaching  # the case the crop used to drop


def test_click_outside_the_crop_is_an_ignore_disc_never_a_point():
    sample = _coordinate_field(xy=[CENTRE, NEAR], labels=[1, 2])
    config, batch, cols, rows = _draw(sample)
    radius = uncertain_radius_px(config)
    points = batch.points.numpy()
    cut_but_reaching = 0
    for i in range(config.batch_size):
        assert np.array_equal(points[i] == 2, _shown(cols[i], rows[i], NEAR))  # the click inside: unchanged
        if _shown(cols[i], rows[i], CENTRE).any():
            assert np.array_equal(points[i] == 1, _shown(cols[i], rows[i], CENTRE))
            assert not batch.ignore[i].any()
        else:
            assert not (points[i] == 1).any()  # never moved onto the border
            disc = _distance(cols[i], rows[i], CENTRE) <= radius
            assert np.array_equal(batch.ignore[i], disc), i
            cut_but_reaching += bool(disc.any())
    assert cut_but_reaching


def test_lymphocyte_cut_off_by_the_crop_still_marks_its_disc_background():
    config, batch, cols, rows = _draw(_coordinate_field(ignore_xy=[CENTRE]))
    radius = not_tumour_radius_px(config)
    assert not batch.ignore.any() and not batch.points.any()
    cut_but_reaching = 0
    for i in range(config.batch_size):
        own_disc = _distance(cols[i], rows[i], CENTRE) <= radius
        if _shown(cols[i], rows[i], CENTRE).any():
            assert np.array_equal(batch.not_tumour[i], _shown(cols[i], rows[i], CENTRE))
            assert not batch.not_tumour_disc[i].any()
        else:
            assert not batch.not_tumour[i].any()  # never moved onto the border
            # Exactly the part of its own disc inside the crop: nothing when it does not reach in, and no
            # pixel past it (a disc grown from the nearest crop pixel reached up to twice the radius).
            assert np.array_equal(batch.not_tumour_disc[i], own_disc), i
            cut_but_reaching += bool(own_disc.any())
    assert cut_but_reaching
    # far_background_term pushes exactly those pixels to background (a click reserves the rest of the crop).
    logits = torch.zeros((config.batch_size, 3, 64, 64), requires_grad=True)
    points = torch.zeros((config.batch_size, 64, 64), dtype=torch.int64)
    points[:, 32, 32] = 1  # a click in the middle reserves the whole crop
    far_background_term(logits, points, 100.0, batch.not_tumour, radius,
                        not_tumour_disc=batch.not_tumour_disc).backward()
    pushed = logits.grad[:, 0] != 0
    for i in range(config.batch_size):
        if not _shown(cols[i], rows[i], CENTRE).any():
            assert np.array_equal(pushed[i].numpy(), batch.not_tumour_disc[i]), i


@pytest.mark.parametrize("kind", ["click", "uncertain"])
def test_visible_part_of_a_cut_off_nucleus_is_ignored_under_scale_jitter(kind):
    """A dark nucleus near a corner, crops rescaled: when its click (or uncertain point) is cut off,
    every dark pixel the crop still shows lies in an ignore disc."""
    rgb = np.full((96, 96, 3), 255, np.uint8)
    yy, xx = np.ogrid[:96, :96]
    rgb[(yy - CENTRE[1]) ** 2 + (xx - CENTRE[0]) ** 2 <= 49] = 0  # 7 px radius
    none = np.zeros((0, 2))
    if kind == "click":
        sample = SimpleNamespace(rgb=rgb, xy=np.array([CENTRE]), labels=np.array([1]), ignore_xy=none)
    else:
        sample = SimpleNamespace(rgb=rgb, xy=none, labels=np.zeros(0, np.int64), ignore_xy=none,
                                 uncertain_xy=np.array([CENTRE]))
    config = TrainConfig(out_dir="unused", crop=64, batch_size=64, stain_sigma=0, stain_bias=0, scale_jitter=0.25)
    batch = draw_batch([[sample]], config, np.random.default_rng(5))
    det = config.detector_config()
    pixels = (batch.images * torch.tensor(det.std).view(1, 3, 1, 1) + torch.tensor(det.mean).view(1, 3, 1, 1)) * 255
    dark = pixels.mean(1).numpy() < 128
    clicked = batch.points.numpy().reshape(64, -1).any(1)
    cut_but_visible = 0
    for i in range(config.batch_size):
        if clicked[i]:
            continue
        assert not (dark[i] & ~batch.ignore[i]).any(), i
        cut_but_visible += bool(dark[i].any())
    assert cut_but_visible


def _textured_field(seed, size=96):
    r = np.random.default_rng(seed)
    n, m, u = r.integers(0, 25), r.integers(0, 6), r.integers(0, 6)
    return SimpleNamespace(rgb=r.integers(0, 255, (size, size, 3)).astype(np.uint8),
                           xy=r.uniform(-0.5, size - 0.5, (n, 2)), labels=r.integers(1, 3, n),
                           ignore_xy=r.uniform(-0.5, size - 0.5, (m, 2)),
                           uncertain_xy=r.uniform(-0.5, size - 0.5, (u, 2)))


@pytest.mark.parametrize("scale_jitter", [0.0, 0.25])
def test_without_a_point_near_the_border_the_batch_is_bit_identical(monkeypatch, scale_jitter):
    """Against the batch drawn with the crop's old rule (points outside dropped, reach = 0): items whose
    crop has no point outside within reach are bit-identical; the others differ only by discs added."""
    real = augment.augment
    drawn = []

    def spy(*args, **kwargs):
        drawn.append(real(*args, **kwargs))
        return drawn[-1]

    def old_rule(*args, **kwargs):
        return real(*args, **{**kwargs, "reach": 0.0})

    identical = grown = 0
    for seed in range(24):
        config = TrainConfig(out_dir="unused", crop=[64, 32][seed % 2], batch_size=4, scale_jitter=scale_jitter,
                             stain_sigma=0.05 * (seed % 3 > 0), stain_bias=0.05 * (seed % 3 > 0))
        pools = [[_textured_field(seed * 3 + k, size=[96, 48, 30][seed % 3]) for k in range(3)]]  # 30 < 32: padded
        drawn.clear()
        monkeypatch.setattr(training_batches.augment, "augment", spy)
        new = draw_batch(pools, config, np.random.default_rng(seed))
        monkeypatch.setattr(training_batches.augment, "augment", old_rule)
        old = draw_batch(pools, config, np.random.default_rng(seed))
        assert torch.equal(new.images, old.images) and torch.equal(new.points, old.points)
        for i, a in enumerate(drawn):
            if a.inside.all():
                identical += 1
                assert np.array_equal(new.not_tumour[i], old.not_tumour[i])
                assert np.array_equal(new.ignore[i], old.ignore[i])
            else:
                grown += 1
                assert (new.not_tumour[i] >= old.not_tumour[i]).all() and (new.ignore[i] >= old.ignore[i]).all()
    assert identical and grown
