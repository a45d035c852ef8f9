"""analysis.imageio: every supported format reads to RGB; every bad input gets one clear ImageInputError."""

import numpy as np
import pytest
from PIL import Image

from analysis import imageio
from analysis.imageio import ImageInputError, parse_region, read_image
from tests.conftest import shared_slide


def field(h=40, w=60, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_lossless_formats_roundtrip_and_crop_region(tmp_path, suffix):
    rgb = field()
    path = tmp_path / f"f{suffix}"
    Image.fromarray(rgb).save(path)
    image = read_image(path)
    assert image.rgb.dtype == np.uint8 and np.array_equal(image.rgb, rgb)
    assert image.origin == (0, 0) and image.source_mpp is None and image.size == (60, 40)
    part = read_image(path, "5,3,20,16")
    assert part.origin == (5, 3) and np.array_equal(part.rgb, rgb[3:19, 5:25])


def test_jpeg_reads_as_rgb(tmp_path):
    path = tmp_path / "f.jpg"
    Image.fromarray(field()).save(path, quality=95)
    assert read_image(path).rgb.shape == (40, 60, 3)


def test_ome_tiff_region_and_mpp(tmp_path):
    import tifffile

    rgb = field(64, 80)
    path = tmp_path / "f.ome.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", metadata={"axes": "YXS", "PhysicalSizeX": 0.25,
                                                            "PhysicalSizeY": 0.25})
    image = read_image(path, (8, 4, 32, 24))
    assert image.kind == "slide" and image.source_mpp == pytest.approx(0.25)
    assert np.array_equal(image.rgb, rgb[4:28, 8:40])


def test_openslide_format_reads_a_region_with_its_mpp():
    image = read_image(shared_slide("CMU-1-Small-Region.svs"), (100, 200, 64, 48))
    assert image.kind == "slide" and image.rgb.shape == (48, 64, 3) and image.origin == (100, 200)
    assert image.source_mpp == pytest.approx(0.499, abs=0.01)


def test_large_slide_needs_a_region(monkeypatch):
    monkeypatch.setattr(imageio, "MAX_PIXELS", 100 * 100)
    with pytest.raises(ImageInputError, match="give a region"):
        read_image(shared_slide("CMU-1-Small-Region.svs"))


def write(path, array, mode=None):
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


@pytest.mark.parametrize("make, region, message", [
    (lambda p: p.write_bytes(b"") and p or p, None, "empty"),
    (lambda p: p.write_text("not an image at all") and p, None, "not an image"),
    (lambda p: write(p, np.zeros((40, 40), np.uint8)), None, "single-channel"),
    (lambda p: write(p, np.zeros((40, 40, 4), np.uint8)), None, "alpha"),
    (lambda p: write(p, np.zeros((1, 1, 3), np.uint8)), None, "too small"),
    (lambda p: write(p, field()), (50, 0, 20, 20), "outside"),
    (lambda p: write(p, field()), (-1, 0, 20, 20), "outside"),
    (lambda p: write(p, field()), (0, 0, 0, 20), "positive"),
    (lambda p: write(p, field()), (0, 0, 20, -5), "positive"),
    (lambda p: write(p, field()), "1,2,3", "four integers"),
    (lambda p: write(p, field()), "a,b,c,d", "four integers"),
])
def test_bad_inputs(tmp_path, make, region, message):
    path = make(tmp_path / "in.png")
    with pytest.raises(ImageInputError, match=message):
        read_image(path, region)


def test_truncated_png_and_missing_file(tmp_path):
    path = write(tmp_path / "f.png", field(200, 200))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageInputError, match="corrupt or truncated"):
        read_image(path)
    with pytest.raises(ImageInputError, match="no such file"):
        read_image(tmp_path / "absent.png")


def test_parse_region():
    assert parse_region(" 1, 2,30,40") == (1, 2, 30, 40)
    assert parse_region(None) is None


@pytest.mark.parametrize("value", [0, -0.5, "nan", "inf", "abc"])
def test_check_mpp_refuses(value):
    with pytest.raises(ImageInputError, match="mpp"):
        imageio.check_mpp(value)
