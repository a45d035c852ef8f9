"""Augmentations move each point with its pixel and keep labels aligned."""

import numpy as np
import pytest

from analysis import augment

H, W = 40, 56  # not square, so a rotation that swapped width and height would show


def dotted(n=12, seed=0):
    """Grey image with a uniquely coloured dot at each point; label = 1 + i % 2."""
    rng = np.random.default_rng(seed)
    rgb = np.full((H, W, 3), 200, np.uint8)
    xy = np.stack([rng.choice(W, n, replace=False), rng.choice(H, n, replace=False)], axis=1).astype(float)
    colours = np.stack([np.arange(n) * 10 + 5, np.arange(n) * 7 + 3, np.full(n, 17)], axis=1).astype(np.uint8)
    rgb[xy[:, 1].astype(int), xy[:, 0].astype(int)] = colours
    labels = 1 + np.arange(n) % 2
    return rgb, xy, labels, colours


def colour_at(rgb, xy):
    cols, rows = np.floor(np.asarray(xy) + 0.5).astype(int).T
    return rgb[rows, cols]


@pytest.mark.parametrize(
    "transform",
    [augment.hflip] + [lambda r, p, k=k: augment.rot90(r, p, k) for k in range(4)],
    ids=["hflip", "rot0", "rot1", "rot2", "rot3"],
)
def test_geometric_transforms_keep_points_on_their_dots(transform):
    rgb, xy, _, colours = dotted()
    out_rgb, out_xy = transform(rgb, xy)
    assert np.array_equal(colour_at(out_rgb, out_xy), colours)
    assert sorted(out_rgb.shape[:2]) == sorted(rgb.shape[:2])


def test_rot90_matches_numpy_and_changes_shape():
    rgb, xy, _, _ = dotted()
    out, _ = augment.rot90(rgb, xy, 1)
    assert np.array_equal(out, np.rot90(rgb)) and out.shape[:2] == (W, H)


def test_crop_drops_outside_points_and_keeps_labels_aligned():
    rgb, xy, labels, colours = dotted()
    out = augment.crop(rgb, xy, labels, x0=10, y0=5, height=20, width=30)
    inside = (xy[:, 0] >= 10) & (xy[:, 0] < 40) & (xy[:, 1] >= 5) & (xy[:, 1] < 25)
    assert 0 < len(out.xy) == inside.sum() < len(xy)
    assert np.array_equal(out.labels, labels[inside])
    assert np.array_equal(colour_at(out.rgb, out.xy), colours[inside])


def test_crop_beyond_the_image_pads_with_white():
    rgb, xy, labels, colours = dotted()
    out = augment.crop(rgb, xy, labels, x0=-8, y0=-4, height=64, width=64)
    assert out.rgb.shape == (64, 64, 3) and (out.rgb[:4] == 255).all() and len(out.xy) == len(xy)
    assert np.array_equal(colour_at(out.rgb, out.xy), colours)


def test_point_on_the_crop_border_follows_its_pixel():
    rgb = np.zeros((10, 10, 3), np.uint8)
    xy = np.array([[4.4, 4.0], [4.6, 4.0]])  # pixels 4 and 5
    out = augment.crop(rgb, xy, [1, 2], x0=5, y0=0, height=10, width=5)
    assert out.labels.tolist() == [2]


@pytest.mark.parametrize("seed", range(8))
def test_augment_with_crop_flips_rotations(seed):
    rgb, xy, labels, colours = dotted(seed=seed)
    out = augment.augment(rgb, xy, labels, np.random.default_rng(seed), crop_size=32, stain_sigma=0, stain_bias=0)
    assert out.rgb.shape == (32, 32, 3)
    # Each surviving point still sits on its own dot and keeps its own label.
    idx = [int(np.flatnonzero((colours == c).all(1))[0]) for c in colour_at(out.rgb, out.xy)]
    assert np.array_equal(out.labels, labels[idx])
    assert len(set(idx)) == len(idx)


def test_stain_jitter_changes_colour_not_geometry_and_is_reproducible():
    rgb, xy, labels, _ = dotted()
    a = augment.augment(rgb, xy, labels, np.random.default_rng(3), stain_sigma=0.2, stain_bias=0.1)
    b = augment.augment(rgb, xy, labels, np.random.default_rng(3), stain_sigma=0.2, stain_bias=0.1)
    plain = augment.augment(rgb, xy, labels, np.random.default_rng(3), stain_sigma=0, stain_bias=0)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.xy, plain.xy)
    assert not np.array_equal(a.rgb, plain.rgb)


@pytest.mark.parametrize("seed", range(6))
def test_scale_jitter_keeps_points_on_their_blobs(seed):
    # Bright 5x5 blobs on grey: after a random rescale each surviving point still lies on its blob
    # (the brightest pixel near the point is its own blob's), and the output stays crop-sized.
    rng = np.random.default_rng(seed)
    rgb = np.full((120, 120, 3), 60, np.uint8)
    xy = np.array([[20.0, 30.0], [60.0, 60.0], [95.0, 25.0], [40.0, 100.0]])
    for x, y in xy.astype(int):
        rgb[y - 2 : y + 3, x - 2 : x + 3] = 250
    out = augment.augment(rgb, xy, [1, 2, 1, 2], rng, crop_size=64, stain_sigma=0, stain_bias=0, scale_jitter=0.3)
    assert out.rgb.shape == (64, 64, 3)
    for x, y in out.xy:
        c, r = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        assert out.rgb[r, c].mean() > 150  # on the blob, not on the grey around it


def test_scale_jitter_draws_sizes_both_ways():
    rgb = np.full((200, 200, 3), 60, np.uint8)
    rgb[95:105, 95:105] = (250, 40, 40)  # a red 10 px square in the centre (padding is white)
    sizes = []
    for seed in range(40):
        out = augment.augment(rgb, [[100.0, 100.0]], [1], np.random.default_rng(seed), crop_size=200,
                              stain_sigma=0, stain_bias=0, scale_jitter=0.25)
        sizes.append(int(((out.rgb[..., 0] > 150) & (out.rgb[..., 1] < 150)).sum()))
    assert min(sizes) < 100 < max(sizes)  # smaller and larger than the 10x10 original


def test_crop_reach_keeps_points_just_outside_marked_as_outside():
    rgb = np.zeros((20, 20, 3), np.uint8)
    xy = [[5.0, 5.0], [-2.0, 5.0], [5.0, 12.4], [13.0, 13.0], [-6.0, 5.0]]  # the window's edge is at -0.5 and 9.5
    near = augment.crop(rgb, xy, [1, 2, 3, 4, 5], x0=0, y0=0, height=10, width=10, reach=3.0)
    assert near.labels.tolist() == [1, 2, 3] and near.inside.tolist() == [True, False, False]
    assert np.array_equal(near.xy, np.asarray(xy)[:3])  # where they are, not moved onto the border
    plain = augment.crop(rgb, xy, [1, 2, 3, 4, 5], x0=0, y0=0, height=10, width=10)
    assert plain.labels.tolist() == [1] and plain.inside.tolist() == [True]


@pytest.mark.parametrize("seed", range(6))
def test_reach_keeps_every_point_whose_disc_overlaps_the_crop_and_changes_nothing_else(seed):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (100, 100, 3)).astype(np.uint8)
    xy, labels = rng.uniform(-0.5, 99.5, (400, 2)), np.arange(400)
    reach = 6.0

    def run(**kwargs):
        return augment.augment(rgb, xy, labels, np.random.default_rng(seed), crop_size=48, scale_jitter=0.3, **kwargs)

    plain, near, everywhere = run(), run(reach=reach), run(reach=1e9)
    assert np.array_equal(plain.rgb, near.rgb) and plain.inside.all()
    assert np.array_equal(plain.labels, near.labels[near.inside]) and np.array_equal(plain.xy, near.xy[near.inside])
    # Where every point lands (outside the crop too): its disc overlaps the crop when the crop pixel
    # nearest it is in it.
    nearest = np.clip(np.floor(everywhere.xy + 0.5), 0, 47)
    overlaps = ((nearest - everywhere.xy) ** 2).sum(axis=1) <= reach**2
    assert set(everywhere.labels[overlaps]) <= set(near.labels.tolist())
    assert (overlaps & ~everywhere.inside).any()  # some centres outside do reach in
