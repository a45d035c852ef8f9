"""LCFCN point-supervised loss: each term on tiny hand-made cases."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from analysis.loss import LossWeights, point_supervised_loss

BG, POS, NEG = 0, 1, 2



def logits_with(shape=(8, 8), blobs=(), batch=1):
    """Confident background everywhere, plus rectangles of confident class c: blobs = [(image, c, rows, cols)]."""
    logits = torch.zeros(batch, 3, *shape)
    logits[:, BG] = 6.0
    for image, cls, rows, cols in blobs:
        logits[image, cls, rows, cols] = 12.0
    return logits


def point_map(points, shape=(8, 8), batch=1):
    """points = [(image, class, row, col)]."""
    labels = torch.zeros(batch, *shape, dtype=torch.long)
    for image, cls, row, col in points:
        labels[image, row, col] = cls
    return labels


def flat_images(shape=(8, 8), batch=1):
    return torch.zeros(batch, 3, *shape)


def loss_of(logits, points, images=None, **kwargs):
    images = flat_images(logits.shape[-2:], logits.shape[0]) if images is None else images
    return point_supervised_loss(logits, points, images, **kwargs)


# image level ---------------------------------------------------------------


def test_image_term_is_low_when_only_the_annotated_class_fires():
    points = point_map([(0, POS, 3, 3)])
    fires_pos = loss_of(logits_with(blobs=[(0, POS, slice(2, 5), slice(2, 5))]), points)
    fires_neg = loss_of(logits_with(blobs=[(0, NEG, slice(2, 5), slice(2, 5))]), points)
    fires_nothing = loss_of(logits_with(), points)
    assert fires_pos.image.item() < 0.01
    assert fires_neg.image.item() > 5.0  # POS missing and NEG present without a point
    assert fires_nothing.image.item() > 5.0
    assert fires_neg.image.item() > fires_nothing.image.item()


def test_image_term_wants_background_somewhere():
    everything_positive = logits_with(blobs=[(0, POS, slice(None), slice(None))])
    assert loss_of(everything_positive, point_map([(0, POS, 3, 3)])).image.item() > 5.0


# point level ---------------------------------------------------------------


def test_point_term_is_near_zero_when_confident_at_the_points_and_high_when_wrong():
    points = point_map([(0, POS, 1, 1), (0, NEG, 6, 6)])
    right = logits_with(blobs=[(0, POS, 1, 1), (0, NEG, 6, 6)])
    swapped = logits_with(blobs=[(0, NEG, 1, 1), (0, POS, 6, 6)])
    assert loss_of(right, points).point.item() < 0.01
    assert loss_of(swapped, points).point.item() > 10.0


def test_point_disc_spreads_each_click_over_its_nearest_pixels_with_unit_total_weight():
    from analysis.loss import point_disc_targets

    points = point_map([(0, POS, 2, 2), (0, NEG, 2, 5)], shape=(8, 10)).numpy()
    classes, weights = point_disc_targets(points, radius_px=1.5)
    assert classes[0, 2, 2] == POS and classes[0, 2, 5] == NEG
    assert classes[0, 1, 1] == POS and classes[0, 3, 6] == NEG  # diagonal neighbours, within 1.5 px
    assert classes[0, 0, 2] == 0 and classes[0, 6, 6] == 0  # 2 px and more away: no target
    assert weights[0][classes[0] == POS].sum() == pytest.approx(1.0)
    assert weights[0][classes[0] == NEG].sum() == pytest.approx(1.0)
    # Each pixel follows its nearest click, so touching discs never overlap.
    assert classes[0, 2, 3] == POS and classes[0, 2, 4] == NEG


def test_point_disc_of_radius_zero_is_the_single_pixel_term():
    points = point_map([(0, POS, 1, 1), (0, NEG, 6, 6)])
    logits = logits_with(blobs=[(0, NEG, 1, 1), (0, POS, 5, 5)]) + 0.1
    single = loss_of(logits, points).point.item()
    assert loss_of(logits, points, point_radius_px=0.5).point.item() == pytest.approx(single)
    # A wider disc also asks for the class around the click (here wrong at (5, 5)).
    assert loss_of(logits, points, point_radius_px=1.5).point.item() != pytest.approx(single)


# split level ---------------------------------------------------------------


def test_two_points_in_one_blob_give_a_split_line_between_them():
    logits = logits_with(blobs=[(0, POS, slice(2, 6), slice(1, 7))])
    terms = loss_of(logits, point_map([(0, POS, 3, 2), (0, POS, 4, 5)]))
    assert terms.targets.n_split_blobs == 1
    assert terms.blob_split.item() > 0
    line = terms.targets.blob_split[0] > 0
    blob = np.zeros((8, 8), bool)
    blob[2:6, 1:7] = True
    assert line.sum() > 0 and not (line & ~blob).any()
    assert not line[3, 2] and not line[4, 5]  # clicked pixels are never pushed to background
    # The line cuts the blob: without it the two points lie in different pieces.
    pieces, _ = ndimage.label(blob & ~line)
    assert pieces[3, 2] > 0 and pieces[4, 5] > 0 and pieces[3, 2] != pieces[4, 5]
    assert np.all(terms.targets.blob_split[0][line] == 3.0)  # LCFCN weight: points in blob + 1


def test_blob_with_one_point_is_not_split():
    logits = logits_with(blobs=[(0, POS, slice(2, 6), slice(1, 7))])
    terms = loss_of(logits, point_map([(0, POS, 3, 2)]))
    assert terms.targets.n_split_blobs == 0
    assert terms.blob_split.item() == 0


def test_touching_nuclei_of_different_classes_are_also_split():
    logits = logits_with(blobs=[(0, POS, slice(2, 6), slice(1, 7))])
    terms = loss_of(logits, point_map([(0, POS, 3, 2), (0, NEG, 3, 5)]))
    assert terms.targets.n_split_blobs == 1 and terms.blob_split.item() > 0


def test_global_split_separates_all_points_even_without_a_merged_blob():
    blobs = [(0, POS, slice(3, 6), slice(1, 4)), (0, NEG, slice(3, 6), slice(12, 15))]
    logits = logits_with(shape=(8, 16), blobs=blobs)
    terms = loss_of(logits, point_map([(0, POS, 4, 2), (0, NEG, 4, 13)], shape=(8, 16)))
    line = terms.targets.global_split[0] > 0
    assert terms.global_split.item() > 0
    assert terms.blob_split.item() == 0
    assert line[:, 7:9].all() and not line[:, :6].any() and not line[:, 10:].any()
    # LCFCN: mean over the line, scaled by the number of points.
    assert terms.targets.global_split[0].sum() == pytest.approx(2.0)


def test_global_split_follows_image_edges():
    shape = (8, 16)
    points = point_map([(0, POS, 4, 2), (0, NEG, 4, 13)], shape=shape)
    images = torch.ones(1, 3, *shape)
    plain = loss_of(logits_with(shape=shape), points, images).targets.global_split[0] > 0
    images[..., :5] = 0.0  # a dark nucleus ending at column 4
    edged = loss_of(logits_with(shape=shape), points, images).targets.global_split[0] > 0
    assert np.nonzero(plain)[1].min() == 7  # midway without an edge
    assert set(np.nonzero(edged)[1]) == {4, 5}  # on the nucleus border with one


def test_global_split_needs_two_points():
    terms = loss_of(logits_with(), point_map([(0, POS, 3, 3)]))
    assert terms.global_split.item() == 0 and not terms.targets.global_split.any()


# false positives -------------------------------------------------------------


def test_blob_without_a_point_is_pushed_to_background():
    logits = logits_with(blobs=[(0, POS, slice(1, 3), slice(1, 3)), (0, NEG, slice(5, 7), slice(5, 7))])
    terms = loss_of(logits, point_map([(0, POS, 1, 1)]))
    assert terms.targets.n_fp_blobs == 1
    assert terms.false_positive.item() > 0
    fp = terms.targets.false_positive[0] > 0
    assert fp[5:7, 5:7].all() and fp.sum() == 4


def test_no_false_positive_term_when_every_blob_has_its_point():
    logits = logits_with(blobs=[(0, POS, slice(1, 3), slice(1, 3)), (0, NEG, slice(5, 7), slice(5, 7))])
    terms = loss_of(logits, point_map([(0, POS, 1, 1), (0, NEG, 6, 6)]))
    assert terms.targets.n_fp_blobs == 0 and terms.false_positive.item() == 0


def test_blob_holding_only_a_point_of_another_class_is_a_false_positive():
    logits = logits_with(blobs=[(0, POS, slice(1, 3), slice(1, 3))])
    terms = loss_of(logits, point_map([(0, NEG, 1, 1)]))
    assert terms.targets.n_fp_blobs == 1 and terms.false_positive.item() > 0


def test_ignored_pixels_neither_count_points_nor_blobs():
    logits = logits_with(blobs=[(0, POS, slice(1, 3), slice(1, 3)), (0, NEG, slice(5, 7), slice(5, 7))])
    points = point_map([(0, POS, 1, 1), (0, NEG, 6, 4)])
    ignore = torch.zeros(1, 8, 8, dtype=torch.bool)
    ignore[0, 4:, 4:] = True  # the NEG blob and the NEG point lie in an unannotated area
    seen = loss_of(logits, points)
    masked = loss_of(logits, points, ignore=ignore)
    assert seen.targets.n_fp_blobs == 1 and masked.targets.n_fp_blobs == 0
    assert seen.point.item() > 1.0 and masked.point.item() < 0.01
    assert masked.image.item() < 0.01  # NEG absent outside the ignored area, and not firing there


# batches, gradients, training -------------------------------------------------------------


def test_batch_loss_is_the_mean_of_per_image_losses():
    blobs = [(0, POS, slice(1, 4), slice(1, 4)), (1, NEG, slice(4, 7), slice(2, 6)), (1, POS, 0, 7)]
    points = [(0, POS, 2, 2), (1, NEG, 5, 3), (1, NEG, 5, 5)]
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    logits = logits_with(blobs=blobs, batch=2) + 0.3 * noise
    batch = loss_of(logits, point_map(points, batch=2))
    singles = [
        loss_of(logits[i : i + 1], point_map([(0, c, r, k) for b, c, r, k in points if b == i])) for i in range(2)
    ]
    for term in ("image", "point", "global_split", "blob_split", "false_positive", "total"):
        expected = (getattr(singles[0], term) + getattr(singles[1], term)) / 2
        assert getattr(batch, term).item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6), term
    # image 1 holds a merged NEG blob and a pointless POS pixel; image 0 neither
    assert batch.targets.n_split_blobs == 1 and batch.targets.n_fp_blobs == 1
    assert batch.targets.blob_split[0].sum() == 0 and batch.targets.blob_split[1].sum() > 0


def test_every_term_sends_gradient_to_the_logits():
    logits = logits_with(blobs=[(0, POS, slice(2, 6), slice(1, 7)), (0, NEG, 7, 7)])
    logits.requires_grad_(True)
    terms = loss_of(logits, point_map([(0, POS, 3, 2), (0, POS, 4, 5)]))
    for name in ("image", "point", "global_split", "blob_split", "false_positive"):
        logits.grad = None
        getattr(terms, name).backward(retain_graph=True)
        assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0, name
    logits.grad = None
    terms.total.backward()
    assert logits.grad[0, :, 7, 7].abs().sum() > 0  # the false-positive pixel is pushed


def test_saturated_logits_give_finite_gradients():
    logits = logits_with(blobs=[(0, POS, slice(None), slice(None))]) * 100
    logits.requires_grad_(True)
    loss_of(logits, point_map([(0, POS, 3, 3)])).total.backward()
    assert torch.isfinite(logits.grad).all()


def test_weights_scale_the_total():
    logits = logits_with(blobs=[(0, POS, slice(2, 6), slice(1, 7)), (0, NEG, 7, 7)])
    points = point_map([(0, POS, 3, 2), (0, POS, 4, 5)])
    t = loss_of(logits, points, weights=LossWeights(image=0, point=0, global_split=0, blob_split=0, false_positive=2))
    assert t.total.item() == pytest.approx(2 * t.false_positive.item())


def test_a_few_optimizer_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 3, 3, padding=1)
    )
    yy, xx = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    images = torch.zeros(2, 3, 24, 24)
    points = torch.zeros(2, 24, 24, dtype=torch.long)
    for image, cls, row, col in [(0, POS, 6, 6), (0, NEG, 16, 15), (1, NEG, 8, 17)]:
        images[image] += torch.exp(-((yy - row) ** 2 + (xx - col) ** 2) / 8.0) * (1.0 if cls == POS else -1.0)
        points[image, row, col] = cls
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        terms = point_supervised_loss(model(images), points, images)
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        losses.append(terms.total.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_and_matches_cpu():
    logits = logits_with(blobs=[(0, POS, slice(2, 6), slice(1, 7)), (1, NEG, 7, 7)], batch=2)
    points = point_map([(0, POS, 3, 2), (0, POS, 4, 5), (1, NEG, 1, 1)], batch=2)
    cpu = loss_of(logits, points)
    gpu_logits = logits.cuda().requires_grad_(True)
    gpu = point_supervised_loss(gpu_logits, points.cuda(), flat_images(batch=2).cuda())
    gpu.total.backward()
    assert gpu.total.device.type == "cuda"
    assert gpu.total.item() == pytest.approx(cpu.total.item(), rel=1e-4)
