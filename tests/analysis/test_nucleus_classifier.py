"""The tumour / non-tumour nucleus classifier (analysis/nucleus_classifier.py): patch geometry in
micrometres, per-field haematoxylin normalisation, training that learns a separable toy problem,
and the checkpoint round trip."""

import numpy as np
import pytest

from analysis import nucleus_classifier as nc
from analysis.stains import compose


def _dot_image(shape, centre, mpp, radius_um=3.0, value=1.0):
    yy, xx = np.indices(shape)
    disc = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= (radius_um / mpp) ** 2
    od = np.zeros((2,) + shape, np.float32)
    od[0][disc] = value
    return nc.StainImage(od, mpp)


@pytest.mark.parametrize("mpp", [0.2, 0.5])
def test_patch_shows_the_same_micrometres_at_any_pixel_size(mpp):
    image = _dot_image((200, 200), (100, 100), mpp)
    p = nc.patches(image, np.array([[100.0, 100.0]]))
    assert p.shape == (1, 2, nc.PATCH_PX, nc.PATCH_PX)
    # A 6 µm disc in a WINDOW_UM window: its width in patch pixels does not depend on mpp.
    row = p[0, 0, nc.PATCH_PX // 2]
    width_px = (row > 0.5).sum()
    assert width_px == pytest.approx(6.0 / nc.WINDOW_UM * nc.PATCH_PX, abs=1.5)
    assert p[0, 1].max() == 0  # the DAB channel stays DAB


def test_patch_off_centre_rotation_flip_and_edges():
    mpp = 0.5
    od = np.zeros((2, 100, 100), np.float32)
    od[0, 49:52, 50:62] = 1.0  # a horizontal bar to the right of the centre (6 µm long)
    image = nc.StainImage(od, mpp)
    c = nc.PATCH_PX // 2
    plain = nc.patches(image, [[50, 50]])[0, 0]
    assert plain[c, c + 5] > 0.5 and plain[c, c - 5] < 0.1
    flipped = nc.patches(image, [[50, 50]], flip=True)[0, 0]
    assert flipped[c, c - 5] > 0.5 and flipped[c, c + 5] < 0.1
    turned = nc.patches(image, [[50, 50]], angle=np.pi / 2)[0, 0]
    assert max(turned[c + 5, c], turned[c - 5, c]) > 0.5 and turned[c, c + 5] < 0.1
    # At the corner most of the window is off the image: read as glass (0), no error.
    corner = nc.patches(image, [[0, 0]])
    assert corner[0, :, :c - 2, :c - 2].max() == 0
    assert nc.patches(image, np.zeros((0, 2))).shape == (0, 2, nc.PATCH_PX, nc.PATCH_PX)


def test_haematoxylin_is_normalised_at_the_nuclei():
    h = np.zeros((64, 64), np.float32)
    h[10:20, 10:20] = 0.2
    h[40:50, 40:50] = 0.2
    rgb = compose(h, np.zeros_like(h))
    xy = np.array([[15.0, 15.0], [45.0, 45.0]])
    raw = nc.StainImage.from_rgb(rgb, 0.5)
    norm = nc.StainImage.from_rgb(rgb, 0.5, nuclei_xy=xy)
    assert raw.od[0, 15, 15] == pytest.approx(0.2, abs=0.02)
    assert norm.od[0, 15, 15] == pytest.approx(nc.H_REFERENCE_OD, abs=0.01)
    np.testing.assert_allclose(norm.od[1], raw.od[1])  # DAB untouched: it carries positivity


def _toy_fields(seed, n_fields=3):
    """Tumour nuclei: large dark discs in clusters; non-tumour: small pale ones, alone."""
    rng = np.random.default_rng(seed)
    fields = []
    for k in range(n_fields):
        od = np.zeros((2, 160, 160), np.float32)
        yy, xx = np.indices((160, 160))
        xy, target = [], []
        for _ in range(10):
            cx, cy = rng.uniform(20, 140, 2)
            big = rng.random() < 0.5
            r, v = (8, 0.8) if big else (4, 0.25)
            od[0][(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = v
            xy.append((cx, cy))
            target.append(nc.TUMOUR if big else nc.NON_TUMOUR)
        fields.append(nc.TrainingField(f"toy{k}", nc.StainImage(od, 0.5), np.array(xy), np.array(target)))
    return fields


def test_training_learns_a_separable_toy_problem_and_round_trips(tmp_path):
    net, report = nc.train(_toy_fields(0), steps=40, batch=16, lr=3e-3)
    assert report.n_tumour > 0 and report.n_non_tumour > 0 and len(report.losses) == 40
    test = _toy_fields(1, n_fields=2)
    p = np.concatenate([nc.tumour_probability(net, f.image, f.xy, tta=False) for f in test])
    t = np.concatenate([f.target for f in test])
    assert p[t == nc.TUMOUR].mean() > p[t == nc.NON_TUMOUR].mean() + 0.2
    path = tmp_path / "filter.pt"
    nc.save(net, path, {"held_out": "toy"})
    again, meta = nc.load(path)
    assert meta == {"held_out": "toy"}
    np.testing.assert_allclose(nc.tumour_probability(again, test[0].image, test[0].xy, tta=False),
                               nc.tumour_probability(net, test[0].image, test[0].xy, tta=False), atol=1e-6)


def test_training_refuses_one_class_and_load_refuses_other_files(tmp_path):
    fields = _toy_fields(0, n_fields=1)
    fields[0].target[:] = nc.TUMOUR
    with pytest.raises(ValueError, match="tumour and non-tumour"):
        nc.train(fields, steps=2)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable nucleus classifier"):
        nc.load(bad)
