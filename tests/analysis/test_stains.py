import numpy as np
import pytest

from analysis import stains
from analysis.stains import DEFAULT_VECTORS, StainVectors


def test_default_vectors_are_ruifrok_johnston_unit_vectors_with_orthogonal_residual():
    m = DEFAULT_VECTORS.matrix
    assert np.allclose(np.linalg.norm(m, axis=1), 1.0)
    assert np.allclose(m[0], np.array([0.650, 0.704, 0.286]) / np.linalg.norm([0.650, 0.704, 0.286]))
    assert np.allclose(m[1], np.array([0.268, 0.570, 0.776]) / np.linalg.norm([0.268, 0.570, 0.776]))
    assert abs(m[2] @ m[0]) < 1e-9 and abs(m[2] @ m[1]) < 1e-9
    assert np.allclose(DEFAULT_VECTORS.inverse @ m, np.eye(3))


def test_custom_vectors_are_normalised():
    v = StainVectors(haematoxylin=(2.0, 2.0, 1.0), dab=(0.0, 3.0, 4.0))
    assert np.allclose(v.haematoxylin, (2 / 3, 2 / 3, 1 / 3))
    assert np.allclose(v.dab, (0.0, 0.6, 0.8))
    with pytest.raises(ValueError):
        StainVectors(dab=(0, 0, 0))


def test_od_is_base10_and_round_trips_every_intensity():
    assert stains.rgb_to_od(np.array([255], np.uint8))[0] == 0.0
    assert stains.rgb_to_od(np.array([25.5], np.float32))[0] == pytest.approx(1.0, abs=1e-6)
    # Black is clipped to intensity 1, so OD stays finite.
    assert np.isfinite(stains.rgb_to_od(np.zeros((2, 2, 3), np.uint8))).all()
    values = np.arange(1, 256, dtype=np.uint8)
    od = stains.rgb_to_od(values)
    assert od.dtype == np.float32
    assert np.array_equal(stains.od_to_rgb(od), values)


def test_compose_then_deconvolve_recovers_concentrations():
    rng = np.random.default_rng(0)
    h = rng.uniform(0, 1.0, (64, 64)).astype(np.float32)
    d = rng.uniform(0, 1.0, (64, 64)).astype(np.float32)
    rgb = stains.compose(h, d)
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 64, 3)
    h2, d2 = stains.deconvolve(rgb)
    assert h2.dtype == np.float32 and d2.shape == (64, 64)
    # uint8 quantisation is the only loss: ~1/255 relative per channel.
    assert np.abs(h2 - h).max() < 0.03 and np.abs(d2 - d).max() < 0.03
    assert np.abs(h2 - h).mean() < 0.005 and np.abs(d2 - d).mean() < 0.005


def test_pure_stains_do_not_leak_into_each_other():
    h_only = stains.compose(np.full((4, 4), 0.6), np.zeros((4, 4)))
    d_only = stains.compose(np.zeros((4, 4)), np.full((4, 4), 0.6))
    h, d = stains.deconvolve(h_only)
    assert np.allclose(h, 0.6, atol=0.01) and np.allclose(d, 0.0, atol=0.01)
    h, d = stains.deconvolve(d_only)
    assert np.allclose(h, 0.0, atol=0.01) and np.allclose(d, 0.6, atol=0.01)
    # Haematoxylin is blue (red absorbed most), DAB brown (blue absorbed most).
    assert h_only[0, 0, 2] > h_only[0, 0, 0]
    assert d_only[0, 0, 0] > d_only[0, 0, 2]
    assert (stains.compose(np.zeros((2, 2)), np.zeros((2, 2))) == 255).all()


def test_round_trip_with_custom_vectors_and_background():
    v = StainVectors(haematoxylin=(0.55, 0.75, 0.35), dab=(0.30, 0.55, 0.80))
    h = np.linspace(0, 0.8, 100, dtype=np.float32).reshape(10, 10)
    d = h[::-1].copy()
    rgb = stains.compose(h, d, v, background=240)
    h2, d2 = stains.deconvolve(rgb, v, background=240)
    assert np.abs(h2 - h).max() < 0.03 and np.abs(d2 - d).max() < 0.03
    # Deconvolving with the wrong vectors does not give the same answer.
    h3, _ = stains.deconvolve(rgb, DEFAULT_VECTORS, background=240)
    assert np.abs(h3 - h).max() > 0.05


def test_hed_jitter_is_seeded_and_changes_stain_amounts_only():
    rng = np.random.default_rng(1)
    h = rng.uniform(0.1, 0.8, (32, 32))
    d = rng.uniform(0.1, 0.8, (32, 32))
    rgb = stains.compose(h, d)
    a = stains.hed_jitter(rgb, np.random.default_rng(5))
    b = stains.hed_jitter(rgb, np.random.default_rng(5))
    assert a.dtype == np.uint8 and a.shape == rgb.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, stains.hed_jitter(rgb, np.random.default_rng(6)))
    # No jitter: identity up to one grey level of re-quantisation.
    same = stains.hed_jitter(rgb, np.random.default_rng(0), sigma=0.0, bias=0.0)
    assert np.abs(same.astype(int) - rgb).max() <= 1
    # A pure scale multiplies each stain's concentration by a factor within
    # [1 - sigma, 1 + sigma], identical for all pixels.
    out = stains.hed_jitter(rgb, np.random.default_rng(2), sigma=0.3, bias=0.0)
    h2, d2 = stains.deconvolve(out)
    ratio_h = np.median(h2 / stains.deconvolve(rgb)[0])
    ratio_d = np.median(d2 / stains.deconvolve(rgb)[1])
    assert 0.69 < ratio_h < 1.31 and 0.69 < ratio_d < 1.31
    assert abs(ratio_h - 1) > 0.005 or abs(ratio_d - 1) > 0.005
