import time
import tracemalloc

import numpy as np
import openslide
import pytest
from scipy import ndimage
from scipy.spatial.distance import pdist, squareform

from analysis import stains, synthetic, synthetic_slide


@pytest.fixture(scope="module")
def field():
    return synthetic.render_field((384, 384), mpp=0.5, seed=7, positive_fraction=0.4,
                                  cluster_fraction=0.4, density=2500)


def test_field_is_labelled_synthetic(field):
    assert field.synthetic is True
    assert field.provenance.startswith("SYNTHETIC")
    assert field.rgb.shape == (384, 384, 3) and field.rgb.dtype == np.uint8
    assert field.points.shape == (len(field.labels), 2)
    assert field.nucleus_mask.shape == (384, 384)
    assert set(np.unique(field.labels)) == {1, 2}


def test_same_seed_same_field_other_seed_other_field(field):
    again = synthetic.render_field((384, 384), mpp=0.5, seed=7, positive_fraction=0.4,
                                   cluster_fraction=0.4, density=2500)
    assert np.array_equal(again.rgb, field.rgb)
    assert np.array_equal(again.points, field.points)
    assert np.array_equal(again.labels, field.labels)
    other = synthetic.render_field((384, 384), mpp=0.5, seed=8)
    assert not np.array_equal(other.rgb, field.rgb)


def test_points_are_exact_nucleus_centres(field):
    xy = np.rint(field.points).astype(int)
    # (x, y) order: column x, row y; each point sits in its own nucleus.
    assert np.array_equal(field.nucleus_mask[xy[:, 1], xy[:, 0]], np.arange(1, len(xy) + 1))
    # Each nucleus's mask centroid is close to its point (shapes are mildly
    # irregular, so not exactly equal).
    idx = np.arange(1, len(xy) + 1)
    com = np.array(ndimage.center_of_mass(np.ones_like(field.nucleus_mask), field.nucleus_mask, idx))
    assert np.median(np.linalg.norm(com[:, ::-1] - field.points, axis=1)) < 1.0
    # And they are dark with haematoxylin.
    h, _ = stains.deconvolve(field.rgb)
    assert np.median(h[xy[:, 1], xy[:, 0]]) > 0.3


def test_nuclei_have_physical_size_and_centres_stay_apart(field):
    for f in (field, synthetic.render_field((384, 384), mpp=0.25, seed=3)):
        area_um2 = np.bincount(f.nucleus_mask.ravel())[1:] * f.mpp ** 2
        # 6-10 um diameter ellipses, minus the share lost where clusters abut.
        assert 20 < np.median(area_um2) < 80
        assert area_um2.max() < np.pi * 5.5 ** 2 * 1.3
        d = squareform(pdist(f.points)) * f.mpp
        np.fill_diagonal(d, np.inf)
        assert d.min() >= 0.6 * 6.0
        # Per pair: >= 0.6 x the larger diameter.  Mask areas are the visible
        # (possibly overlapped) part, so equivalent diameters underestimate.
        diam = 2 * np.sqrt(area_um2 / np.pi)
        assert (d >= 0.6 * np.maximum.outer(diam, diam)).all()


def test_clusters_touch_and_fraction_positive_is_honoured(field):
    # Touching = different nuclei labels side by side.
    m = field.nucleus_mask
    a, b = m[:, :-1], m[:, 1:]
    touching = {tuple(sorted(p)) for p in zip(a[(a > 0) & (b > 0) & (a != b)],
                                              b[(a > 0) & (b > 0) & (a != b)])}
    assert len(touching) >= 5
    iso = synthetic.render_field((384, 384), mpp=0.5, seed=7, cluster_fraction=0.0)
    a, b = iso.nucleus_mask[:, :-1], iso.nucleus_mask[:, 1:]
    assert not ((a > 0) & (b > 0) & (a != b)).any()
    assert (field.labels == 1).mean() == pytest.approx(0.4, abs=0.01)
    n = synthetic.render_field((256, 256), mpp=0.5, seed=1, n_nuclei=30)
    assert len(n.points) == 30


def test_positive_cells_have_a_dab_membrane_ring(field):
    _, dab = stains.deconvolve(field.rgb)
    yy, xx = np.mgrid[0:384, 0:384]

    def ring_dab(x, y):
        r = np.hypot(xx - x, yy - y) * field.mpp
        return dab[(r > 4.0) & (r < 8.5)].max()

    keep = ((field.points > 12) & (field.points < 372)).all(1)
    pos = [ring_dab(*p) for p in field.points[keep & (field.labels == 1)]]
    neg = [ring_dab(*p) for p in field.points[keep & (field.labels == 2)]]
    assert np.median(pos) > 0.25
    assert np.median(pos) > 2 * np.median(neg)


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("wsi") / "synthetic.tif"
    tracemalloc.start()
    t0 = time.perf_counter()
    s = synthetic_slide.write_pyramidal_tiff(path, size=(4096, 4096), mpp=0.5, seed=11, tile=256,
                                       tissue_fraction=0.4, density=800)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return s, seconds, peak


def test_pyramidal_tiff_opens_in_openslide_with_mpp_and_levels(slide):
    s, _, _ = slide
    assert s.synthetic is True and s.provenance.startswith("SYNTHETIC")
    o = openslide.OpenSlide(s.path)
    assert float(o.properties["openslide.mpp-x"]) == pytest.approx(0.5)
    assert float(o.properties["openslide.mpp-y"]) == pytest.approx(0.5)
    assert o.level_dimensions == ((4096, 4096), (2048, 2048), (1024, 1024))
    assert [tuple(reversed(lv)) for lv in s.levels] == list(o.level_dimensions)
    assert o.properties["openslide.level[0].tile-width"] == "256"
    assert "SYNTHETIC" in o.properties["tiff.ImageDescription"]


def test_slide_written_tile_by_tile_without_whole_image_in_memory(slide):
    _, seconds, peak = slide
    full_level0 = 4096 * 4096 * 3
    assert peak < full_level0 / 3, f"peak traced memory {peak / 1e6:.1f} MB"
    assert seconds < 30  # ~4 s without tracemalloc's overhead


def test_slide_truth_points_lie_on_nuclei_inside_tissue(slide):
    s, _, _ = slide
    o = openslide.OpenSlide(s.path)
    assert len(s.points) > 500 and set(np.unique(s.labels)) == {1, 2}
    for x, y in s.points[:: max(len(s.points) // 25, 1)]:
        patch = np.asarray(o.read_region((int(x) - 2, int(y) - 2), 0, (5, 5)))[..., :3]
        h, _ = stains.deconvolve(patch)
        assert h.mean() > 0.2, (x, y)
    # Tissue is a blob with glass around it: the thumbnail is mostly white at
    # the border and the stained area is roughly the requested fraction.
    thumb = np.asarray(o.read_region((0, 0), 2, o.level_dimensions[2]))[..., :3]
    tissue = ndimage.uniform_filter(stains.rgb_to_od(thumb).sum(-1), 9) > 0.08
    assert 0.3 < tissue.mean() < 0.5  # asked for 0.4
    assert tissue[:8].mean() < 0.05 and tissue[-8:].mean() < 0.05
    # Lower levels are downsampled copies of level 0.
    a = np.asarray(o.read_region((2048, 2048), 0, (512, 512)))[..., :3].astype(float)
    b = np.asarray(o.read_region((2048, 2048), 1, (256, 256)))[..., :3].astype(float)
    a2 = a.reshape(256, 2, 256, 2, 3).mean((1, 3))
    assert np.abs(a2 - b).mean() < 6


def test_tiles_join_seamlessly_and_match_a_direct_render(tmp_path):
    # Lossless, noise-free slide with edge tiles (size not a tile multiple):
    # a window across a tile corner equals rendering that window in one go.
    kw = dict(mpp=0.5, seed=5, tissue_fraction=0.9, density=2500, positive_fraction=0.5,
              cluster_fraction=0.3)
    s = synthetic_slide.write_pyramidal_tiff(tmp_path / "s.tif", size=(700, 900), tile=256,
                                       compression="zlib", noise=0.0, levels=2, **kw)
    o = openslide.OpenSlide(s.path)
    assert o.level_dimensions == ((900, 700), (450, 350))
    got = np.asarray(o.read_region((180, 190), 0, (160, 150)))[..., :3]
    style, cover, cells = synthetic.slide_model(
        (700, 900), kw["mpp"], kw["seed"], kw["tissue_fraction"], kw["density"],
        kw["positive_fraction"], kw["cluster_fraction"])
    ref, _ = synthetic.render_window(cells, style, 180, 190, 150, 160, kw["mpp"],
                                      np.random.default_rng(0), noise=0.0, tissue=cover)
    assert np.abs(got.astype(int) - ref).max() <= 1
    assert np.array_equal(s.points, cells.xy)
