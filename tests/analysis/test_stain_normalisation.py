"""analysis.stain_normalisation on tiny SYNTHETIC cases (pure numpy, no Django)."""

import numpy as np
import pytest

from analysis import stains
from analysis.stain_normalisation import (
    angle_deg,
    estimate_background,
    estimate_stain_vectors,
    estimate_stains,
    normalise,
    normalise_to_reference,
)
from analysis.stains import DEFAULT_VECTORS, StainVectors


def _rotate(v, deg):
    """Rotate a unit OD vector by ``deg`` in the hue direction (perpendicular to it and grey)."""
    v = np.asarray(v, float) / np.linalg.norm(v)
    u = np.cross(np.ones(3) / np.sqrt(3), v)
    u /= np.linalg.norm(u)
    a = np.radians(deg)
    return np.cos(a) * v + np.sin(a) * u


def _field(vectors=DEFAULT_VECTORS, n=96, dab_fraction=0.4, seed=0, background=255.0, mixed=True):
    """Blobs of pure H, pure DAB and mixtures on light glass: known concentrations."""
    rng = np.random.default_rng(seed)
    h = np.zeros((n, n), np.float32)
    d = np.zeros((n, n), np.float32)
    kind = rng.uniform(size=(n // 8, n // 8))
    for (i, j), k in np.ndenumerate(kind):
        sl = np.s_[i * 8 + 1:i * 8 + 7, j * 8 + 1:j * 8 + 7]
        if k < dab_fraction:
            d[sl] = rng.uniform(0.2, 0.8)
            h[sl] = rng.uniform(0.0, 0.05)
        elif k < 0.85 or not mixed:
            h[sl] = rng.uniform(0.2, 0.9)
        else:
            h[sl], d[sl] = rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.4)
    rgb = stains.compose(h, d, vectors, background=background)
    return rgb, h, d


def _rotated(h_deg=8.0, dab_deg=-7.0):
    return StainVectors(haematoxylin=tuple(_rotate(DEFAULT_VECTORS.haematoxylin, h_deg)),
                        dab=tuple(_rotate(DEFAULT_VECTORS.dab, dab_deg)))


def test_defaults_are_recovered_from_a_default_coloured_field():
    rgb, _, _ = _field()
    est = estimate_stains(rgb)
    assert est.fallbacks == []
    assert est.angle_h_deg < 2.0 and est.angle_dab_deg < 2.0
    assert np.allclose(est.background, 255.0)
    assert isinstance(estimate_stain_vectors(rgb), StainVectors)


def test_rotated_stain_vectors_are_estimated_within_a_few_degrees():
    true = _rotated(8.0, -7.0)
    rgb, _, _ = _field(true)
    v = estimate_stain_vectors(rgb)
    assert angle_deg(v.haematoxylin, true.haematoxylin) < 2.0
    assert angle_deg(v.dab, true.dab) < 2.0
    # ... and they are not simply the defaults.
    assert angle_deg(v.haematoxylin, DEFAULT_VECTORS.haematoxylin) > 6.0


def test_normalising_back_reproduces_the_reference_composition():
    true = _rotated(8.0, -7.0)
    rgb_src, h, d = _field(true, seed=3)
    rgb_ref = stains.compose(h, d)  # same concentrations, reference colours
    out, est = normalise(rgb_src)
    assert est.fallbacks == []
    diff = np.abs(out.astype(int) - rgb_ref.astype(int))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 6
    # Un-normalised, the rotated field is clearly different.
    assert np.abs(rgb_src.astype(int) - rgb_ref.astype(int)).mean() > 3 * diff.mean()
    # With the true vectors, normalise_to_reference is exact up to rounding.
    exact = normalise_to_reference(rgb_src, true)
    assert np.abs(exact.astype(int) - rgb_ref.astype(int)).max() <= 2


def test_a_colour_cast_on_the_glass_is_taken_as_the_white_level():
    bg = np.array([240.0, 248.0, 255.0])
    rgb, h, d = _field(seed=5)
    cast = np.clip(np.rint(rgb * (bg / 255.0)), 0, 255).astype(np.uint8)
    level = estimate_background(cast)
    assert np.allclose(level, bg, atol=1.0)
    out, est = normalise(cast)
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 1.0
    # Recovered DAB matches the truth where there is DAB.
    _, d2 = stains.deconvolve(out)
    assert np.abs(d2 - d)[d > 0.2].mean() < 0.03


def test_h_reference_scales_all_concentrations_by_one_factor():
    rgb, h, d = _field(seed=7)
    darker = stains.compose(1.2 * h, 1.2 * d)  # exposure/gamma: every OD x 1.2
    ref = estimate_stains(rgb).h_percentile
    out, _ = normalise(darker, h_reference=ref)
    h2, d2 = stains.deconvolve(out)
    assert np.abs(d2 - d)[d > 0.2].mean() < 0.03
    assert np.abs(h2 - h)[h > 0.2].mean() < 0.03


def test_blank_or_nearly_empty_field_falls_back_to_defaults():
    blank = np.full((64, 64, 3), 250, np.uint8)
    est = estimate_stains(blank)
    assert est.vectors == DEFAULT_VECTORS
    assert est.fallbacks and "too few" in est.fallbacks[0]
    out, _ = normalise(blank)
    assert out.shape == blank.shape and out.dtype == np.uint8


def test_dab_free_field_keeps_the_default_dab_vector():
    true = _rotated(6.0, -7.0)
    rgb, _, _ = _field(true, dab_fraction=0.0, seed=1, mixed=False)
    est = estimate_stains(rgb)
    assert angle_deg(est.vectors.dab, DEFAULT_VECTORS.dab) < 1e-6
    assert any("DAB" in f for f in est.fallbacks)
    # The haematoxylin estimate is still this field's own.
    assert angle_deg(est.vectors.haematoxylin, true.haematoxylin) < 2.5


def test_estimates_far_from_the_defaults_are_clamped_or_rejected():
    clamp = _rotated(18.0, -7.0)  # between MAX_ANGLE_DEG (12) and REJECT_ANGLE_DEG (25)
    est = estimate_stains(_field(clamp, seed=2)[0])
    assert est.angle_h_deg == pytest.approx(12.0, abs=0.01)
    assert any("clamped" in f for f in est.fallbacks)
    # A wildly different "H" (e.g. a counterstain that is not haematoxylin) -> default H.
    odd = StainVectors(haematoxylin=(0.9, 0.2, 0.1), dab=DEFAULT_VECTORS.dab)
    est = estimate_stains(_field(odd, seed=2)[0])
    assert est.vectors.haematoxylin == DEFAULT_VECTORS.haematoxylin
    assert any("haematoxylin" in f and "default" in f for f in est.fallbacks)


def test_estimated_vectors_plug_into_classic_params():
    from analysis.classic import ClassicParams, detect_classic

    rgb, _, _ = _field(_rotated())
    params = ClassicParams(vectors=estimate_stain_vectors(rgb))
    assert len(detect_classic(rgb, 0.5, params)) >= 0


def test_bad_background_argument_is_rejected():
    with pytest.raises(ValueError):
        estimate_stains(np.zeros((4, 4, 3), np.uint8), background="white")
