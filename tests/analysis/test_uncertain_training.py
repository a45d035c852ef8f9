"""Nuclei annotators disagreed on (Sample.uncertain_xy) are an ignore zone in training: no loss term
pushes them to background, and a field without them trains exactly as before."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from analysis.loss import LossWeights, point_supervised_loss
from analysis.training_batches import draw_batch, far_background_term, make_batch, uncertain_radius_px
from analysis.training_config import TrainConfig

BACKGROUND_PUSHING = ("image", "global_split", "blob_split", "false_positive")


def _field(uncertain=None, size=96, seed=0):
    """A textured field with two clicks, a lymphocyte and (optionally) uncertain nuclei."""
    rgb = np.random.default_rng(seed).integers(60, 230, (size, size, 3)).astype(np.uint8)
    fields = dict(rgb=rgb, xy=np.array([[20.0, 30.0], [70.0, 60.0]]), labels=np.array([1, 2]),
                  ignore_xy=np.array([[50.0, 15.0]]))
    if uncertain is not None:
        fields["uncertain_xy"] = np.reshape(np.asarray(uncertain, float), (-1, 2))
    return SimpleNamespace(**fields)


@pytest.mark.parametrize("scale_jitter", [0.0, 0.25])
def test_uncertain_nuclei_change_nothing_but_the_ignore_mask(scale_jitter):
    config = TrainConfig(out_dir="unused", crop=64, batch_size=6, scale_jitter=scale_jitter)
    plain = draw_batch([[_field()]], config, np.random.default_rng(3))
    empty = draw_batch([[_field(uncertain=np.zeros((0, 2)))]], config, np.random.default_rng(3))
    disputed = draw_batch([[_field(uncertain=[[40.0, 45.0], [80.0, 20.0]])]], config, np.random.default_rng(3))
    old_style = make_batch([[_field()]], config, np.random.default_rng(3))
    for other in (empty, disputed, old_style):
        assert torch.equal(plain.images, other[0]) and torch.equal(plain.points, other[1])
        assert np.array_equal(plain.not_tumour, other[2])
    assert len(old_style) == 3  # the three-part view callers of make_batch unpack
    # Without uncertain nuclei the only discs are those of clicks the crop cut off: the same in both.
    assert np.array_equal(plain.ignore, empty.ignore)
    assert (disputed.ignore >= plain.ignore).all() and (disputed.ignore > plain.ignore).any()
    assert not (disputed.ignore & (disputed.points.numpy() > 0)).any()  # a click is never ignored


def test_ignore_disc_follows_the_nucleus_through_crop_and_flips():
    """A dark nucleus with a red centre pixel: its uncertain point moves with it, and is dropped with it."""
    rgb = np.full((96, 96, 3), 255, np.uint8)
    cy, cx = 12, 80  # near a corner: some crops keep the centre, others cut it off
    yy, xx = np.ogrid[:96, :96]
    nucleus = (yy - cy) ** 2 + (xx - cx) ** 2 <= 36  # 6 px (3 µm) radius
    rgb[nucleus] = 0
    rgb[cy, cx] = (255, 0, 0)
    sample = SimpleNamespace(rgb=rgb, xy=np.zeros((0, 2)), labels=np.zeros(0, np.int64),
                             ignore_xy=np.zeros((0, 2)), uncertain_xy=np.array([[float(cx), float(cy)]]))
    config = TrainConfig(out_dir="unused", crop=64, batch_size=64, stain_sigma=0, stain_bias=0)
    batch = draw_batch([[sample]], config, np.random.default_rng(0))
    det = config.detector_config()
    mean = torch.tensor(det.mean).view(1, 3, 1, 1)
    std = torch.tensor(det.std).view(1, 3, 1, 1)
    radius = uncertain_radius_px(config)
    assert radius == config.background_radius_um / config.mpp == 14  # a click's own reserve: covers the nucleus
    pixels = torch.round((batch.images * std + mean) * 255).permute(0, 2, 3, 1).numpy()
    red = (pixels[..., 0] == 255) & (pixels[..., 1] == 0)
    dark = pixels.sum(-1) == 0
    seen = cut = cut_but_visible = 0
    for i in range(config.batch_size):
        if red[i].any():  # the centre is in the crop: the whole visible nucleus is ignored
            seen += 1
            assert dark[i].any() and not (dark[i] & ~batch.ignore[i]).any()
            (r,), (c,) = np.nonzero(red[i])
            disc = (np.arange(64)[:, None] - r) ** 2 + (np.arange(64)[None] - c) ** 2 <= radius**2
            assert np.array_equal(batch.ignore[i], disc)  # centred on the nucleus, clipped by the crop only
        else:  # the centre was cropped out: what the crop still shows of the nucleus is ignored all the same
            cut += 1
            cut_but_visible += bool(dark[i].any())
            assert not (dark[i] & ~batch.ignore[i]).any()
    assert seen and cut and cut_but_visible  # all cases occurred


def _scene():
    """Logits and targets on which every background-pushing LCFCN term is active over the disc.

    Two clicks of class 1 left and right, an uncertain nucleus between them: the network says
    class 1 almost everywhere (one blob holding both clicks: global and per-blob split lines cross
    the middle) and class 2 on a bar from the uncertain nucleus outwards (a class-2 blob without a
    class-2 click: a false positive; and class 2 is absent, so the image term pushes its maximum down).
    """
    size = 64
    points = torch.zeros(1, size, size, dtype=torch.long)
    points[0, 32, 8] = points[0, 32, 56] = 1
    yy, xx = np.ogrid[:size, :size]
    ignore = np.zeros((1, size, size), bool)
    ignore[0] = (yy - 32) ** 2 + (xx - 32) ** 2 <= 12**2
    logits = torch.zeros(1, 3, size, size)
    logits[0, 1] = 3.0
    logits[0, 2, 14:31, 30:35] = 6.0  # a bar from the nucleus out of its disc
    logits[0, 2, 26, 32] = 7.0  # the class-2 maximum sits on the uncertain nucleus
    logits = logits + 0.01 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(0))
    images = torch.zeros(1, 3, size, size)
    images[..., 32:] = 1.0  # an intensity edge down the middle: the watershed between the clicks meets there
    return logits, points, images, ignore


def _grad(term_of, logits):
    logits = logits.clone().requires_grad_(True)
    term_of(logits).backward()
    return logits.grad


def test_no_lcfcn_term_pushes_an_uncertain_disc_to_background():
    logits, points, images, ignore = _scene()
    weights = LossWeights()
    for name in BACKGROUND_PUSHING:
        def term(lg, mask, name=name):
            return getattr(point_supervised_loss(lg, points, images, weights, ignore=mask), name)

        unmasked = _grad(lambda lg: term(lg, None), logits)
        assert unmasked[0][:, ignore[0]].abs().sum() > 0, name  # without the mask it does push there
        masked = _grad(lambda lg: term(lg, torch.from_numpy(ignore)), logits)
        assert (masked[0][:, ignore[0]] == 0).all(), name
    targets = point_supervised_loss(logits, points, images, weights, ignore=torch.from_numpy(ignore)).targets
    for weight_map in (targets.global_split, targets.blob_split, targets.false_positive):
        assert not weight_map[ignore].any() and weight_map.any()


def test_far_background_term_skips_an_uncertain_disc_even_over_a_lymphocyte():
    logits, points, _, ignore = _scene()
    lymph = np.zeros_like(ignore)
    lymph[0, 32, 40] = True  # inside the disc: its own background disc must not reach the tumour nucleus
    lymph[0, 5, 5] = True
    unmasked = _grad(lambda lg: far_background_term(lg, points, 4.0, lymph, 2.0), logits)
    assert unmasked[0, 0][ignore[0]].abs().sum() > 0
    for mask in (ignore, torch.from_numpy(ignore)):
        masked = _grad(lambda lg: far_background_term(lg, points, 4.0, lymph, 2.0, ignore=mask), logits)
        assert (masked[0][:, ignore[0]] == 0).all()
        assert (masked[0, 0, 5, 5] < 0)  # the lymphocyte outside the disc is still background


def test_total_training_loss_has_no_gradient_inside_an_uncertain_disc():
    """What train() adds up, on a drawn batch: zero gradient over each disc outside the clicks' own discs."""
    config = TrainConfig(out_dir="unused", crop=64, batch_size=4, scale_jitter=0.2)
    batch = draw_batch([[_field(uncertain=[[45.0, 45.0], [40.0, 70.0]])]], config, np.random.default_rng(1))
    assert batch.ignore.any()
    logits = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    point_disc = config.point_radius_um / config.mpp

    def total(lg, ignore):
        terms = point_supervised_loss(lg, batch.points, batch.images, config.loss_weights, point_radius_px=point_disc,
                                      ignore=None if ignore is None else torch.from_numpy(ignore))
        far = far_background_term(lg, batch.points, config.background_radius_um / config.mpp, batch.not_tumour,
                                  point_disc, ignore=ignore)
        return terms.total + config.background_weight * far

    from scipy import ndimage

    clicks = batch.points.numpy() > 0
    near_click = np.stack([ndimage.distance_transform_edt(~c) <= point_disc if c.any() else np.zeros_like(c)
                           for c in clicks])
    quiet = batch.ignore & ~near_click
    assert quiet.any()
    assert _grad(lambda lg: total(lg, None), logits).permute(0, 2, 3, 1)[quiet].abs().sum() > 0
    masked = _grad(lambda lg: total(lg, batch.ignore), logits)
    assert (masked.permute(0, 2, 3, 1)[quiet] == 0).all()


def test_without_uncertain_nuclei_the_loss_is_bit_identical():
    config = TrainConfig(out_dir="unused", crop=96, batch_size=4)  # the whole field: no click cut off by the crop
    batch = draw_batch([[_field()]], config, np.random.default_rng(2))
    assert not batch.ignore.any()
    logits = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    radius = config.point_radius_um / config.mpp
    before = point_supervised_loss(logits, batch.points, batch.images, config.loss_weights, point_radius_px=radius)
    after = point_supervised_loss(logits, batch.points, batch.images, config.loss_weights, point_radius_px=radius,
                                  ignore=torch.from_numpy(batch.ignore))
    for name in ("image", "point", "global_split", "blob_split", "false_positive", "total"):
        assert torch.equal(getattr(before, name), getattr(after, name)), name
    far_before = far_background_term(logits, batch.points, 14.0, batch.not_tumour, radius)
    far_after = far_background_term(logits, batch.points, 14.0, batch.not_tumour, radius, ignore=batch.ignore)
    assert torch.equal(far_before, far_after)


@pytest.mark.slow
def test_train_hands_the_ignore_discs_to_both_loss_terms(tmp_path, monkeypatch):
    from analysis import datasets, training

    real_load = datasets.load_sources

    def with_disputes(*args, **kwargs):  # half the clicks of each training field become uncertain
        out = []
        for s in real_load(*args, **kwargs):
            if s.split == "train" and len(s.xy) > 1:
                s = replace(s, xy=s.xy[::2], labels=s.labels[::2], uncertain_xy=s.xy[1::2])
            out.append(s)
        return out

    seen = {"loss": [], "far": []}
    real_loss, real_far = training.point_supervised_loss, training.far_background_term

    def loss(*args, **kwargs):
        seen["loss"].append(kwargs.get("ignore"))
        return real_loss(*args, **kwargs)

    def far(*args, **kwargs):
        seen["far"].append(kwargs.get("ignore"))
        return real_far(*args, **kwargs)

    monkeypatch.setattr(training.datasets, "load_sources", with_disputes)
    monkeypatch.setattr(training, "point_supervised_loss", loss)
    monkeypatch.setattr(training, "far_background_term", far)
    training.train(TrainConfig(out_dir=str(tmp_path), steps=2, batch_size=2, crop=64, synthetic_train=2,
                               synthetic_val=0, synthetic_size=96, warmup_steps=1, progress=False))
    assert len(seen["loss"]) == len(seen["far"]) == 2
    assert all(m is not None for m in seen["loss"] + seen["far"])
    assert any(bool(m.any()) for m in seen["loss"])
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(seen["loss"], seen["far"]))
