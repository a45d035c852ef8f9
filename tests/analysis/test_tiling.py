import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from analysis.synthetic_slide import write_pyramidal_tiff
from analysis.tiling import Tile, batch_tiles, choose_level, in_core, read_tile, tile_grid, to_level0
from analysis.tissue import TissueMask
from slideio.slidefile import open_slide


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiling") / "synthetic.tiff"
    write_pyramidal_tiff(path, size=(1024, 1536), mpp=0.25, seed=5, levels=2, tissue_fraction=0.6)
    return path


def pyramid(width, height, downsamples):
    dims = [(int(np.ceil(width / d)), int(np.ceil(height / d))) for d in downsamples]
    return dims, list(downsamples)


@pytest.mark.parametrize("downsamples, slide_mpp, working_mpp, level, scale", [
    ((1, 4, 16), 0.25, 0.5, 0, 0.5),  # no 2x level: read level 0 and halve it
    ((1, 2), 0.25, 0.5, 1, 1.0),  # the 2x level is exactly the working resolution
    ((1, 2.0002, 4.0004), 0.25, 1.0, 2, 1.0),  # OpenSlide-style near-integer downsamples
    ((1, 2, 4), 0.5, 0.25, 0, 2.0),  # working finer than the scan: only level 0 may be upsampled
    ((1, 2, 4), None, 0.5, 0, 1.0),  # unknown mpp: level 0 as it is
])
def test_level_choice(downsamples, slide_mpp, working_mpp, level, scale):
    assert choose_level(downsamples, slide_mpp, working_mpp) == (level, pytest.approx(scale))


@pytest.mark.parametrize("size, downsamples, slide_mpp, working_mpp, tile_px, overlap_px", [
    ((1000, 700), (1,), 0.5, 0.5, 256, 32),
    ((1000, 700), (1, 4), 0.25, 0.5, 128, 32),  # scale 0.5
    ((997, 613), (1, 2), 0.25, 0.5, 100, 20),  # level 1, odd sizes
    ((1000, 701), (1,), 0.5, 0.7, 128, 16),  # scale 0.714..., cores not whole multiples
    ((50, 40), (1,), 0.5, 0.5, 512, 32),  # slide smaller than one tile
])
def test_cores_partition_the_slide_and_windows_overlap(size, downsamples, slide_mpp, working_mpp, tile_px, overlap_px):
    dims, ds = pyramid(*size, downsamples)
    tiles = tile_grid(dims, ds, slide_mpp, working_mpp, tile_px=tile_px, overlap_px=overlap_px)
    width, height = size
    owners = np.zeros((height, width), np.int32)
    for t in tiles:
        x0, y0, x1, y1 = t.core
        owners[y0:y1, x0:x1] += 1
    assert (owners == 1).all()  # every level-0 pixel in exactly one core
    assert len({(t.read_w, t.read_h) for t in tiles}) == 1  # one tile size: batches stack
    by_pos = {(t.row, t.col): t for t in tiles}
    for t in tiles:
        assert max(t.out_w, t.out_h) <= tile_px + 1
        f = t.level_downsample / t.scale  # level-0 px per working px
        # The read window contains the core with half the overlap to spare on each side.
        x0, y0, x1, y1 = t.core
        assert x0 - t.x0 >= overlap_px / 2 * f - 1 and y0 - t.y0 >= overlap_px / 2 * f - 1
        assert t.x0 + t.read_w * t.level_downsample - x1 >= overlap_px / 2 * f - 1
        right = by_pos.get((t.row, t.col + 1))
        if right is not None:
            overlap_working = (t.x0 + t.read_w * t.level_downsample - right.x0) / f
            assert overlap_working >= overlap_px


def test_tiles_without_tissue_are_skipped():
    dims, ds = pyramid(2000, 1000, (1,))
    mask = np.zeros((100, 200), bool)  # 10 level-0 px per mask px
    mask[10:20, 10:20] = True  # tissue at level-0 x, y in [100, 200)
    tissue = TissueMask(mask, downsample=10.0, level=0, mpp=0.5)
    every = tile_grid(dims, ds, 0.5, 0.5, tile_px=256, overlap_px=32)
    kept = tile_grid(dims, ds, 0.5, 0.5, tile_px=256, overlap_px=32, mask=tissue)
    assert [t.index for t in kept] == [0]  # index is the position in the full grid
    assert kept[0] == every[0]
    mask[:, :] = True
    assert len(tile_grid(dims, ds, 0.5, 0.5, 256, 32, mask=tissue)) == len(every)
    half = tile_grid(dims, ds, 0.5, 0.5, 256, 32, mask=TissueMask(np.eye(100, 200, dtype=bool), 10.0, 0, 0.5),
                     min_tissue_fraction=0.5)
    assert half == []  # a diagonal line never covers half of a tile


def test_read_tile_matches_a_direct_read(slide_path):
    slide = open_slide(slide_path)
    # Working 0.5 µm/px on a 0.25 µm/px slide with a 2x level: level 1 read as is.
    tiles = tile_grid(slide.level_dimensions, slide.level_downsamples, 0.25, 0.5, tile_px=256, overlap_px=32)
    assert {t.level for t in tiles} == {1} and {t.scale for t in tiles} == {1.0}
    inner = next(t for t in tiles if t.x0 >= 0 and t.y0 >= 0 and t.x0 + t.read_w * 2 <= 1536 and t.y0 + t.read_h * 2 <= 1024)
    direct = np.asarray(slide.read_region((inner.x0, inner.y0), 1, (inner.read_w, inner.read_h)))[..., :3]
    assert np.array_equal(read_tile(slide, inner), direct)

    # Working 1.0 µm/px without a 4x level: level 1 halved.
    tiles = tile_grid(slide.level_dimensions, slide.level_downsamples, 0.25, 1.0, tile_px=128, overlap_px=16)
    t = tiles[len(tiles) // 2]
    assert (t.level, t.scale) == (1, 0.5)
    rgb = read_tile(slide, t)
    assert rgb.shape == (t.out_h, t.out_w, 3) == (128, 128, 3)
    region = slide.read_region((t.x0, t.y0), 1, (t.read_w, t.read_h)).convert("RGB")
    expected = np.asarray(region.resize((t.out_w, t.out_h), Image.BILINEAR))
    assert np.abs(rgb.astype(int) - expected).max() <= 1


def test_read_tile_pads_outside_the_slide_with_white(slide_path):
    slide = open_slide(slide_path)
    first = tile_grid(slide.level_dimensions, slide.level_downsamples, 0.25, 0.25, tile_px=256, overlap_px=32)[0]
    assert first.x0 < 0 and first.y0 < 0
    rgb = read_tile(slide, first)
    assert (rgb[:16, :16] == 255).all()  # the 16-px margin before the slide's corner


def test_points_map_to_level0_and_belong_to_one_tile():
    dims, ds = pyramid(3000, 2000, (1, 2, 8))
    tiles = tile_grid(dims, ds, 0.25, 0.5, tile_px=256, overlap_px=32)  # level 1
    t = tiles[7]
    # Working pixel (0, 0) is level-1 pixel (0, 0) of the read, i.e. level-0 px 0-1: centre 0.5.
    assert np.allclose(t.to_level0([[0, 0]]), [[t.x0 + 0.5, t.y0 + 0.5]])
    rng = np.random.default_rng(0)
    points = rng.uniform([-0.5, -0.5], [2999.5, 1999.5], (5000, 2))  # pixel i spans [i - 0.5, i + 0.5)
    owners = np.stack([t.owns(points) for t in tiles])
    assert (owners.sum(axis=0) == 1).all()


def test_batch_tiles():
    dims, ds = pyramid(1000, 1000, (1,))
    tiles = tile_grid(dims, ds, 0.5, 0.5, tile_px=256, overlap_px=32)
    batches = batch_tiles(tiles, 4)
    assert [len(b) for b in batches] == [4] * (len(tiles) // 4) + ([len(tiles) % 4] if len(tiles) % 4 else [])
    assert [t for b in batches for t in b] == tiles
    with pytest.raises(ValueError):
        batch_tiles(tiles, 0)


def test_tile_survives_a_json_round_trip():
    dims, ds = pyramid(1000, 1000, (1, 2))
    tile = tile_grid(dims, ds, 0.25, 0.5, tile_px=256, overlap_px=32)[3]
    again = Tile(**json.loads(json.dumps(dataclasses.asdict(tile))))  # as a queued batch carries it
    assert again == tile and isinstance(again.core, tuple)
    xy = np.array([[10.0, 20.0], [100.0, 5.0]])
    assert np.array_equal(to_level0(again, xy, ds), tile.to_level0(xy))
    assert np.array_equal(in_core(again, tile.to_level0(xy)), tile.owns(tile.to_level0(xy)))


def test_tiled_detection_finds_each_nucleus_once(tmp_path):
    """Tiles -> classic detector -> level 0 -> core ownership -> merge, against the generator's truth."""
    from scipy.spatial import cKDTree

    from analysis.detectors import load_detector
    from analysis.merge import merge_detections

    truth = write_pyramidal_tiff(tmp_path / "s.tiff", size=(768, 1024), mpp=0.5, seed=11, tissue_fraction=0.9)
    slide = open_slide(truth.path)
    detector = load_detector("classic")
    parts = []
    for t in tile_grid(slide.level_dimensions, slide.level_downsamples, 0.5, 0.5, tile_px=256, overlap_px=32):
        found = detector.detect(read_tile(slide, t), 0.5)
        xy0 = t.to_level0(found.xy)
        keep = t.owns(xy0)
        parts.append((xy0[keep], found.labels[keep], found.scores[keep]))
    merged = merge_detections(parts, dedupe_radius_px=6.0)  # 3 µm
    assert len(merged) > 0.8 * len(truth.points)
    distance, _ = cKDTree(truth.points).query(merged.xy)
    assert np.mean(distance < 8) > 0.9  # detections sit on true nuclei (4 µm)
    # No nucleus twice: no two kept points closer than the dedupe radius.
    assert len(cKDTree(merged.xy).query_pairs(6.0)) == 0


def test_a_nucleus_placed_across_a_core_border_by_both_neighbours_is_kept_once():
    """Each tile sees a border nucleus in its own context: the left tile may place it just right of the
    border and the right tile just left of it.  Were each to keep only its core, neither would keep it."""
    from analysis.merge import merge_detections

    dims, ds = pyramid(1000, 1000, (1,))
    tiles = tile_grid(dims, ds, 0.25, 0.5, tile_px=256, overlap_px=32)  # 2 level-0 px per working px
    left = next(t for t in tiles if t.row == 0 and t.col == 0)
    right = next(t for t in tiles if t.row == 0 and t.col == 1)
    border = left.core[2]
    assert right.core[0] == border and left.band0 == 2  # 1 working px
    seen_by_left = np.array([[border + 0.3, 50.0]])
    seen_by_right = np.array([[border - 0.8, 50.0]])
    assert not left.owns(seen_by_left)[0] and not right.owns(seen_by_right)[0]  # the exact cores: lost
    parts = [(p[in_core(t, p)], np.ones(int(in_core(t, p).sum())), np.full(int(in_core(t, p).sum()), s))
             for t, p, s in ((left, seen_by_left, 0.9), (right, seen_by_right, 0.8))]
    merged = merge_detections(parts, dedupe_radius_px=6.0)
    assert len(merged) == 1 and merged.xy[0, 0] == pytest.approx(border + 0.3)
    # Past the band, or past the slide's edge, nothing is kept.
    assert not in_core(left, np.array([[border + 2.6, 50.0]]))[0]
    last = max(tiles, key=lambda t: t.col)
    assert not in_core(last, np.array([[999.6, 50.0]]))[0] and in_core(last, np.array([[999.4, 50.0]]))[0]
    assert not in_core(left, np.array([[-0.6, 50.0]]))[0]


def test_the_band_is_kept_when_tiles_are_upsampled_and_old_tiles_keep_their_core():
    """A 0.5 µm/px slide at a 0.25 µm model's resolution: one working px is half a level-0 px. Rounded down
    to whole level-0 px the band vanished there, and a nucleus placed across a border was lost again."""
    dims, ds = pyramid(1000, 1000, (1,))
    assert {t.band0 for t in tile_grid(dims, ds, 0.5, 0.5, tile_px=256, overlap_px=32)} == {1.0}
    up = tile_grid(dims, ds, 0.5, 0.25, tile_px=256, overlap_px=32)
    left, right = (next(t for t in up if (t.row, t.col) == (0, c)) for c in (0, 1))
    assert left.band0 == pytest.approx(0.5)
    border = left.core[2] - 0.5  # where the cores meet, in continuous level-0 coordinates
    seen_by_left, seen_by_right = np.array([[border + 0.2, 40.0]]), np.array([[border - 0.3, 40.0]])
    assert in_core(left, seen_by_left)[0] and in_core(right, seen_by_right)[0]
    assert not in_core(left, np.array([[border + 0.6, 40.0]]))[0]
    tile = tile_grid(dims, ds, 0.25, 0.5, tile_px=256, overlap_px=32)[1]
    queued_before = {k: v for k, v in dataclasses.asdict(tile).items() if k not in ("slide_size", "band0")}
    old = Tile(**json.loads(json.dumps(queued_before)))
    outside = np.array([[old.core[0] - 1.0, 10.0]])
    assert not in_core(old, outside)[0] and in_core(tile, outside)[0]


def test_every_tile_is_exactly_tile_px_at_any_scanner_resolution():
    """0.4536 µm/px (a Hamamatsu 20x) gave 513-px tiles: the CPU detector split each into four passes."""
    dims, ds = pyramid(5000, 4000, (1, 4, 16))
    for slide_mpp in [0.4536, 0.4416, 0.4654, 0.2738, *np.linspace(0.2, 0.6, 401)]:
        for tile_px, overlap_px in ((512, 64), (256, 32), (1024, 64)):
            tiles = tile_grid(dims, ds, float(slide_mpp), 0.5, tile_px=tile_px, overlap_px=overlap_px)
            t = tiles[0]
            assert (t.out_w, t.out_h) == (tile_px, tile_px), (slide_mpp, tile_px)
            f = t.level_downsample / t.scale  # level-0 px per working px
            assert (t.core[0] - t.x0) / f >= overlap_px / 2 - 1e-6  # the overlap asked for is kept
