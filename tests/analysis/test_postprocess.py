"""Probability maps to points: peaks, plateaus, NMS, batched inference."""

from pathlib import Path

import numpy as np
import pytest
import torch

import analysis.postprocess as postprocess
from analysis.nets import DetectorConfig, build_detector, load_checkpoint
from analysis.nms import greedy_order
from analysis.postprocess import PointSet, _reference_extract_points, extract_points, nms_keep, predict

ROOT = Path(__file__).resolve().parents[2]
STARTER = ROOT / "analysis/starter/fcn-r18-starter-v5.pt"
SHARED = ROOT.parent / "shared/data"

MPP = 0.5  # with the default 3 µm radius: 6 px



def prob_map(blobs, shape=(64, 64), sigma=3.0):
    """(C=3, H, W) softmax-like map from blobs = [(row, col, class, height)]; foreground is clipped at 0.98."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    per_class = np.zeros((3, *shape))
    for row, col, cls, height in blobs:
        per_class[cls] += height * np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * sigma**2))
    foreground = per_class[1:].sum(0)
    scale = np.where(foreground > 0.98, 0.98 / np.maximum(foreground, 1e-12), 1.0)
    per_class[1:] *= scale
    per_class[0] = 1.0 - per_class[1:].sum(0)
    return per_class.astype(np.float32)


def spikes(positions, shape=(32, 32), height=0.9, cls=1):
    """Single-pixel peaks of equal height: only NMS can separate them."""
    probs = np.zeros((3, *shape), np.float32)
    probs[0] = 1.0
    for row, col in positions:
        probs[0, row, col] = 1.0 - height
        probs[cls, row, col] = height
    return probs


def test_each_gaussian_blob_gives_one_point_of_its_class_at_its_centre():
    blobs = [(10, 40, 1, 0.9), (40, 12, 2, 0.8), (50, 50, 1, 0.7)]
    (found,) = extract_points(prob_map(blobs)[None], MPP)
    assert isinstance(found, PointSet) and len(found) == 3
    assert found.xy.dtype == np.float32 and found.labels.dtype == np.int8 and found.scores.dtype == np.float32
    by_row = np.argsort(found.xy[:, 1])
    np.testing.assert_allclose(found.xy[by_row], [[40, 10], [12, 40], [50, 50]], atol=0.5)  # (x=col, y=row)
    assert found.labels[by_row].tolist() == [1, 2, 1]
    np.testing.assert_allclose(found.scores[by_row], [0.9, 0.8, 0.7], atol=1e-5)
    assert np.all(np.diff(found.scores) <= 0)  # best first


def test_a_plateau_wider_than_the_radius_still_gives_one_point_at_its_centre():
    probs = prob_map([(30, 20, 2, 3.0)], sigma=5.0)  # clipped at 0.98 over a disc ~15 px wide
    plateau = (1 - probs[0]) == (1 - probs[0]).max()
    assert plateau.sum() > 100
    (found,) = extract_points(probs[None], MPP)
    assert len(found) == 1 and found.labels[0] == 2
    np.testing.assert_allclose(found.xy[0], [20, 30], atol=0.5)


def test_an_even_sized_plateau_gives_its_sub_pixel_centre():
    probs = spikes([(10, 10), (10, 11), (11, 10), (11, 11)])
    (found,) = extract_points(probs[None], MPP)
    np.testing.assert_allclose(found.xy, [[10.5, 10.5]])


@pytest.mark.parametrize("distance, expected", [(4, 1), (5, 1), (7, 2), (20, 2)])
def test_equal_peaks_closer_than_the_radius_merge(distance, expected):
    probs = spikes([(10, 5), (10, 5 + distance)])
    (found,) = extract_points(probs[None], MPP, nms_radius_um=3.0)
    assert len(found) == expected
    assert found.xy[0].tolist() == [5.0, 10.0]  # tie: the first in row-major order wins


def test_neighbouring_blobs_merge_within_the_radius_and_stay_apart_beyond_it():
    (close,) = extract_points(prob_map([(30, 30, 1, 0.9), (30, 34, 2, 0.8)], sigma=2.0)[None], MPP)
    (apart,) = extract_points(prob_map([(30, 20, 1, 0.9), (30, 40, 2, 0.8)], sigma=2.0)[None], MPP)
    assert len(close) == 1
    assert len(apart) == 2 and sorted(apart.labels.tolist()) == [1, 2]


def test_suppression_ignores_class():
    probs = spikes([(10, 5)], cls=1) + spikes([(10, 9)], cls=2, height=0.8)
    probs[0] = 1.0 - probs[1:].sum(0)
    (found,) = extract_points(probs[None], MPP)
    assert found.labels.tolist() == [1]


def test_peaks_below_min_score_are_dropped():
    probs = prob_map([(10, 10, 1, 0.4), (40, 40, 1, 0.9)])[None]
    assert len(extract_points(probs, MPP, min_score=0.5)[0]) == 1
    assert len(extract_points(probs, MPP, min_score=0.3)[0]) == 2


def test_radius_is_in_micrometres():
    probs = spikes([(10, 5), (10, 12)])[None]  # 7 px apart
    assert len(extract_points(probs, mpp=0.5, nms_radius_um=3.0)[0]) == 2  # 6 px radius
    assert len(extract_points(probs, mpp=0.25, nms_radius_um=3.0)[0]) == 1  # 12 px radius


def test_nms_is_exact_greedy():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 60, size=(300, 2))
    scores = rng.choice([0.5, 0.6, 0.7, 0.8], size=300)  # many ties
    kept = []
    for i in sorted(range(300), key=lambda i: -scores[i]):  # Python's sort is stable too
        if all(np.sum((xy[i] - xy[j]) ** 2) >= 16.0 for j in kept):
            kept.append(i)
    got = nms_keep(torch.from_numpy(xy), torch.from_numpy(scores), 4.0)
    assert got.tolist() == kept


def _reference_nms_keep(xy, scores, radius):
    """The host NMS (analysis.nms) as the device solver answers: indices best first."""
    return torch.from_numpy(greedy_order(np.asarray(xy), np.asarray(scores), radius))


def test_the_device_solver_and_the_host_nms_agree_at_the_radius():
    # Exactly at the radius a kept point does not suppress (both sides of the one rule).
    xy = torch.tensor([[0.0, 0.0], [6.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms_keep(xy, scores, 6.0).tolist() == [0, 1] == _reference_nms_keep(xy, scores, 6.0).tolist()


def test_batch_keeps_images_apart():
    batch = np.stack([prob_map([(10, 10, 1, 0.9)]), prob_map([]), prob_map([(50, 20, 2, 0.9), (10, 50, 1, 0.9)])])
    first, empty, third = extract_points(batch, MPP)
    assert first.labels.tolist() == [1]
    assert len(empty) == 0 and empty.xy.shape == (0, 2)
    assert sorted(third.labels.tolist()) == [1, 2]


def test_same_input_gives_identical_output_and_numpy_equals_tensor():
    rng = np.random.default_rng(2)
    rows, cols, classes = rng.integers(0, 64, 40), rng.integers(0, 64, 40), rng.integers(1, 3, 40)
    blobs = [(r, c, k, 0.6 + 0.3 * rng.random()) for r, c, k in zip(rows, cols, classes)]
    probs = prob_map(blobs)[None]
    a, b = extract_points(probs, MPP)[0], extract_points(torch.from_numpy(probs), MPP)[0]
    assert len(a) > 5
    for field in ("xy", "labels", "scores"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    # every kept pair is at least the radius apart
    d = np.linalg.norm(a.xy[:, None] - a.xy[None], axis=-1) + np.eye(len(a)) * 1e9
    assert d.min() >= 6.0


class DarkSpotModel(torch.nn.Module):
    """Stub detector: dark pixels are positive nuclei, and it insists on the padded size."""

    def forward(self, x):
        assert x.shape[-1] % 8 == 0 and x.shape[-2] % 8 == 0
        darkness = -x.mean(dim=1)
        return torch.stack([-4 * darkness, 4 * darkness, torch.zeros_like(darkness)], dim=1)


def test_predict_returns_points_in_input_pixels_for_odd_sizes():
    images = np.full((2, 60, 52, 3), 230, np.uint8)
    images[0, 20:25, 40:45] = 10  # a dark nucleus centred at row 22, col 42
    images[1, 50:53, 5:8] = 10  # row 51, col 6
    config = DetectorConfig(arch="unet")
    first, second = predict(DarkSpotModel(), images, config)
    np.testing.assert_allclose(first.xy, [[42, 22]])
    np.testing.assert_allclose(second.xy, [[6, 51]])
    assert first.labels.tolist() == [1]


def test_predict_normalises_with_the_config():
    seen = {}

    class Recorder(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x.clone()
            return torch.zeros(x.shape[0], 3, *x.shape[-2:])

    images = np.zeros((1, 16, 16, 3), np.uint8)
    images[..., 0] = 255
    predict(Recorder(), images, DetectorConfig(mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 0.5)))
    assert torch.allclose(seen["x"][0, :, 0, 0], torch.tensor([2.0, -1.0, -1.0]))


def test_predict_with_a_tiny_resnet18_fcn_is_deterministic_on_cpu():
    torch.manual_seed(0)
    model = build_detector("fcn", "resnet18")
    config = DetectorConfig(backbone="resnet18")
    images = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    torch.use_deterministic_algorithms(True)
    try:
        first = predict(model, images, config, min_score=0.0)
        second = predict(model, torch.from_numpy(images), config, min_score=0.0)
    finally:
        torch.use_deterministic_algorithms(False)
    assert len(first) == 2 and all(isinstance(p, PointSet) for p in first)
    assert not model.training
    assert sum(len(p) for p in first) > 0  # min_score=0 keeps every peak of an untrained net
    for a, b in zip(first, second):
        assert np.array_equal(a.xy, b.xy) and np.array_equal(a.labels, b.labels) and np.array_equal(a.scores, b.scores)
        assert ((a.xy >= 0) & (a.xy <= 63)).all()


def test_predict_refuses_channels_first_or_float_images():
    with pytest.raises(ValueError):
        predict(DarkSpotModel(), np.zeros((1, 3, 16, 16), np.uint8), DetectorConfig())
    with pytest.raises(ValueError):
        predict(DarkSpotModel(), np.zeros((1, 16, 16, 3), np.float32), DetectorConfig())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_extraction_matches_cpu_and_predict_runs_in_bf16():
    probs = prob_map([(10, 40, 1, 0.9), (40, 12, 2, 0.8), (30, 20, 2, 3.0)])[None]
    cpu, gpu = extract_points(probs, MPP)[0], extract_points(torch.from_numpy(probs).cuda(), MPP)[0]
    assert np.array_equal(cpu.xy, gpu.xy) and np.array_equal(cpu.labels, gpu.labels)
    images = np.full((2, 60, 52, 3), 230, np.uint8)
    images[0, 20:25, 40:45] = 10
    found = predict(DarkSpotModel(), images, DetectorConfig(), device="cuda")
    np.testing.assert_allclose(found[0].xy, [[42, 22]])


# --------------------------------------------------------------------------- new vs greedy reference


def assert_same_points(new, reference):
    """Same points in the same order: positions, labels and scores bit for bit."""
    assert len(new) == len(reference)
    for a, b in zip(new, reference):
        assert np.array_equal(a.xy, b.xy) and a.xy.dtype == b.xy.dtype == np.float32
        assert np.array_equal(a.labels, b.labels) and a.labels.dtype == b.labels.dtype == np.int8
        assert np.array_equal(a.scores, b.scores) and a.scores.dtype == b.scores.dtype == np.float32


def random_probs(rng, batch, height, width):
    """Softmax of noisy logits; often quantised or bf16-rounded so that plateaus and ties abound."""
    logits = rng.normal(size=(batch, 3, height, width)) * rng.uniform(0.5, 6)
    # Smooth a little so peaks have neighbourhoods like a network's, then maybe quantise.
    logits = torch.nn.functional.avg_pool2d(torch.from_numpy(logits), 3, stride=1, padding=1).numpy()
    steps = rng.choice([0, 1, 2, 4])
    if steps:
        logits = np.round(logits * steps) / steps
    probs = torch.from_numpy(logits).float().softmax(dim=1)
    if rng.random() < 0.3:
        probs = probs.bfloat16().float()
    return probs


@pytest.mark.parametrize("seed", range(12))
def test_extraction_equals_the_greedy_reference_on_random_maps(seed):
    rng = np.random.default_rng(100 + seed)
    for _ in range(12):
        probs = random_probs(rng, int(rng.integers(1, 4)), int(rng.integers(6, 90)), int(rng.integers(6, 90)))
        mpp, radius, min_score = rng.choice([0.25, 0.5, 1.0]), rng.choice([1.0, 3.0, 5.0]), rng.choice([0.0, 0.3, 0.5])
        assert_same_points(extract_points(probs, mpp, radius, min_score),
                           _reference_extract_points(probs, mpp, radius, min_score))


def test_random_maps_exercise_plateaus_and_chained_suppression():
    """The comparison above is only worth something if plateaus and NMS chains occur: check they do."""
    rng = np.random.default_rng(7)
    plateau_pixels = suppressed = 0
    for _ in range(20):
        probs = random_probs(rng, 2, 64, 64)
        foreground = 1 - probs[:, 0]
        pooled = torch.nn.functional.max_pool2d(foreground[:, None], 9, stride=1, padding=4)[:, 0]
        peaks = (foreground == pooled) & (foreground >= 0.5)
        image, row, col = peaks.nonzero(as_tuple=True)
        neighbours = torch.nn.functional.max_pool2d(peaks[:, None].float(), 3, stride=1, padding=1)[:, 0]
        plateau_pixels += int(((neighbours * 9 - 1) > 0)[peaks].sum()) if len(row) else 0
        found = sum(len(p) for p in extract_points(probs, MPP))
        suppressed += len(row) - found
    assert plateau_pixels > 50 and suppressed > 50


def test_a_serpentine_plateau_longer_than_the_labelling_rounds_is_one_point_as_in_the_reference():
    height = width = 48
    mask = np.zeros((height, width), bool)
    for r in range(0, height - 4, 4):  # a 1-px snake: ~700 pixels, 10 turns
        mask[r, 1:width - 1] = True
        mask[r:r + 4, width - 2 if (r // 4) % 2 == 0 else 1] = True
    probs = np.zeros((1, 3, height, width), np.float32)
    probs[0, 0] = 1.0
    probs[0, 0][mask], probs[0, 2][mask] = 0.2, 0.8
    (found,) = extract_points(probs, MPP)
    assert len(found) == 1 and found.labels.tolist() == [2]
    assert_same_points([found], _reference_extract_points(probs, MPP))


def test_a_chain_of_suppressions_longer_than_the_rounds_is_resolved_exactly():
    # Points 5 px apart in a row, scores falling along it: greedy keeps every other one, which
    # takes one round per link to settle in parallel.
    n = 4 * postprocess.NMS_ROUNDS + 3
    xy = torch.stack([torch.arange(n, dtype=torch.float64) * 5.0, torch.zeros(n, dtype=torch.float64)], dim=1)
    scores = torch.linspace(0.99, 0.6, n)
    kept = nms_keep(xy, scores, 6.0)
    assert kept.tolist() == list(range(0, n, 2))
    assert torch.equal(kept, _reference_nms_keep(xy, scores, 6.0))


@pytest.mark.parametrize("seed", range(4))
def test_nms_keep_equals_the_reference_with_ties_and_clusters(seed):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 200, (40, 2))
    xy = torch.from_numpy(centres[rng.integers(0, 40, 600)] + rng.normal(0, 3, (600, 2)) - 50)  # negative too
    scores = torch.from_numpy(rng.choice([0.5, 0.6, 0.7, 0.9], 600)).float()
    for radius in (0.0, 2.5, 6.0, 15.0):
        assert torch.equal(nms_keep(xy, scores, radius), _reference_nms_keep(xy, scores, radius))


def test_one_copy_to_the_host_per_batch(monkeypatch):
    rng = np.random.default_rng(3)
    probs = random_probs(rng, 4, 64, 64)
    copies = []
    original = torch.Tensor.cpu

    def counting(self, *args, **kwargs):
        copies.append(tuple(self.shape))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", counting)
    found = extract_points(probs, MPP, min_score=0.3)
    assert sum(len(p) for p in found) > 10
    assert len(copies) == 1


def real_tiles():
    """Crops of real IHC fields: BCData Ki67 or DeepLIIF panel 0 (the IHC image). None if not here."""
    from PIL import Image

    bcdata = sorted((SHARED / "ihc_train/bcdata_ki67").glob("*.png"))[:3]
    deepliif = sorted((SHARED / "ihc/deepliif_train").glob("*.png"))[:2]
    tiles = [np.asarray(Image.open(p).convert("RGB"))[:256, :256] for p in bcdata]
    tiles += [np.asarray(Image.open(p).convert("RGB"))[:256, 128:384] for p in deepliif]  # panel 0: x < 512
    return np.stack(tiles) if tiles else None


@pytest.mark.skipif(not STARTER.exists(), reason="the shipped starter is missing")
def test_extraction_equals_the_reference_on_real_maps_of_the_starter():
    tiles = real_tiles()
    if tiles is None:
        pytest.skip("no shared IHC data (../shared/data/ihc_train/bcdata_ki67 or ../shared/data/ihc/deepliif_train)")
    model, config, _ = load_checkpoint(STARTER)
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float().div(255)
    mean, std = torch.tensor(config.mean).view(1, 3, 1, 1), torch.tensor(config.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        probs = model((x - mean) / std).softmax(dim=1)
    # As computed (fp32) and as a bf16 GPU run would round it (many more plateaus).
    for variant in (probs, probs.bfloat16().float()):
        for min_score in (0.5, 0.2):
            new = extract_points(variant, config.mpp, 3.0, min_score)
            assert sum(len(p) for p in new) > 20 * len(tiles)  # real nuclei, not an empty map
            assert_same_points(new, _reference_extract_points(variant, config.mpp, 3.0, min_score))


def test_channels_last_and_sliced_probabilities_give_the_same_points():
    """The GPU runtime hands over channels_last maps, cropped views too: the strided gather must follow."""
    probs = random_probs(np.random.default_rng(11), 3, 72, 80)
    expected = _reference_extract_points(probs, MPP, 3.0, 0.3)
    assert sum(len(p) for p in expected) > 10
    assert_same_points(extract_points(probs.contiguous(memory_format=torch.channels_last), MPP, 3.0, 0.3), expected)
    padded = torch.nn.functional.pad(probs, (0, 8, 0, 5))
    assert_same_points(extract_points(padded[:, :, :72, :80], MPP, 3.0, 0.3), expected)
