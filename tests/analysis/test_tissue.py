import numpy as np
import pytest
from PIL import Image

from analysis import tissue
from analysis.synthetic import render_field, slide_model
from analysis.synthetic_slide import write_pyramidal_tiff
from analysis.tissue import TissueMask, tissue_mask
from slideio.slidefile import open_slide
from tests.conftest import shared_slide

SIZE, MPP, SEED, FRACTION = (2048, 2048), 0.5, 3, 0.4


@pytest.fixture(scope="module")
def synthetic_slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("tissue") / "synthetic.tiff"
    write_pyramidal_tiff(path, size=SIZE, mpp=MPP, seed=SEED, tissue_fraction=FRACTION, levels=3)
    return path


def generator_tissue(mask: TissueMask) -> np.ndarray:
    """The generator's own tissue blob, sampled at the centres of the mask's pixels."""
    _, cover, _ = slide_model(SIZE, MPP, SEED, FRACTION, 2000.0, 0.4, 0.3)
    rows, cols = np.mgrid[0:mask.mask.shape[0], 0:mask.mask.shape[1]]
    return cover((cols + 0.5) * mask.downsample - 0.5, (rows + 0.5) * mask.downsample - 0.5) > 0.5


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_synthetic_pyramid_mask_matches_generator_tissue(synthetic_slide):
    slide = open_slide(synthetic_slide)
    result = tissue_mask(slide)  # 10 µm/px wanted; the 4x level (2 µm/px) is the coarsest not above it
    assert result.level == 2
    assert result.downsample == pytest.approx(20.0)
    truth = generator_tissue(result)
    assert iou(result.mask, truth) > 0.8
    truth_mm2 = truth.sum() * (MPP * result.downsample) ** 2 / 1e6
    assert result.area_mm2 == pytest.approx(truth_mm2, rel=0.15)


def test_blank_slide_gives_an_empty_mask(tmp_path):
    rng = np.random.default_rng(0)
    glass = np.clip(245 + rng.normal(0, 3, (800, 900, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(glass).save(tmp_path / "glass.png")
    Image.fromarray(np.full((300, 300, 3), 255, np.uint8)).save(tmp_path / "white.png")
    for name in ("glass.png", "white.png"):
        result = tissue_mask(open_slide(tmp_path / name))
        assert not result.mask.any(), name
        assert result.area_mm2 is None  # a PNG has no mpp
    assert tissue_mask(open_slide(tmp_path / "white.png")).threshold_od is None


def field_on_glass(tmp_path, mode="RGB", fill=(250, 250, 250, 255)):
    """A SYNTHETIC field pasted into a larger canvas; returns (path, tissue box x0, y0, x1, y1)."""
    field = render_field(size=(400, 500), mpp=0.5, seed=1).rgb
    canvas = np.zeros((900, 1200, 4), np.uint8)
    canvas[:] = fill
    canvas[300:700, 400:900, :3] = field
    canvas[300:700, 400:900, 3] = 255
    path = tmp_path / "field.png"
    Image.fromarray(canvas if mode == "RGBA" else canvas[..., :3], mode).save(path)
    return path, (400, 300, 900, 700)


def box_iou(result, box):
    x0, y0, x1, y1 = (round(v / result.downsample) for v in box)
    expected = np.zeros_like(result.mask)
    expected[y0:y1, x0:x1] = True
    return iou(result.mask, expected)


def test_one_level_png_without_mpp(tmp_path):
    path, box = field_on_glass(tmp_path)
    result = tissue_mask(open_slide(path))
    assert result.level == 0 and result.mpp is None and result.area_mm2 is None
    assert box_iou(result, box) > 0.9


def test_transparent_and_black_no_data_are_background(tmp_path):
    # OpenSlide reports unscanned areas as transparent black; some scanners store opaque black.
    for fill in [(0, 0, 0, 0), (0, 0, 0, 255)]:
        path, box = field_on_glass(tmp_path, "RGBA", fill)
        result = tissue_mask(open_slide(path), slide_mpp=0.5, target_mpp=4.0)
        assert box_iou(result, box) > 0.9, fill


def test_chunked_reading_matches_a_whole_read(synthetic_slide, monkeypatch):
    slide = open_slide(synthetic_slide)
    whole = tissue_mask(slide, downsample=12)  # level 2 (4x), reduced 3x in memory
    monkeypatch.setattr(tissue, "CHUNK_PX", 100)  # not a multiple of the level size
    chunked = tissue_mask(slide, downsample=12)
    assert whole.level == chunked.level == 2 and whole.downsample == 12
    assert np.array_equal(whole.mask, chunked.mask)


def test_mask_is_never_finer_than_max_side(synthetic_slide):
    result = tissue_mask(open_slide(synthetic_slide), downsample=1, max_side=512)
    assert max(result.mask.shape) <= 512
    assert result.downsample == pytest.approx(4.0)


def test_real_he_region_has_tissue():
    slide = open_slide(shared_slide("CMU-1-Small-Region.svs"))
    assert slide.level_count == 1
    result = tissue_mask(slide)
    assert result.level == 0
    assert result.downsample == pytest.approx(10.0 / 0.499, rel=0.05)
    assert 0.1 < result.mask.mean() < 0.9
    assert result.area_mm2 > 0.3


def test_fraction_in_box():
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True
    result = TissueMask(mask, downsample=10.0, level=0, mpp=1.0)
    assert result.fraction_in_box(20, 20, 40, 40) == 1.0
    assert result.fraction_in_box(0, 0, 20, 20) == 0.0
    assert result.fraction_in_box(15, 15, 25, 25) == pytest.approx(0.25)  # touches 4 mask px, 1 tissue
    assert result.fraction_in_box(500, 500, 600, 600) == 0.0
    assert result.area_mm2 == pytest.approx(4 * 100 / 1e6)
