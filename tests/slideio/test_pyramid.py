"""A pyramid is one image at several resolutions: a level whose width and height are reduced by different
factors (a label page flagged "reduced resolution"), or levels out of order, are refused before anything
is stored, so the thumbnail annotators see can never be a label."""

import re

import numpy as np
import pytest
import tifffile

from slideio.pyramid import pyramid_problem
from slideio.slidefile import SlideError, inspect_slide


def scan(height=2048, width=4096):
    image = np.full((height, width, 3), 230, np.uint8)
    image[height // 4:3 * height // 4, width // 4:3 * width // 4] = (150, 80, 60)
    return image


def label_image():
    label = np.full((600, 600, 3), 255, np.uint8)
    label[200:400, 50:550] = 0  # black text band
    return label


@pytest.mark.parametrize("dims, downsamples", [
    ([(46000, 32914), (11500, 8228), (2875, 2057)], [1, 4.000121555, 16.00048]),  # Aperio CMU-1
    ([(300, 250), (150, 125), (75, 62), (37, 31)], [1, 2, 4.016129032258064, 8.086312118570184]),  # boxes.tiff
    ([(1001, 1001), (501, 501), (251, 251), (126, 126), (63, 63), (32, 32), (16, 16), (8, 8), (4, 4)],
     [1, 1001 / 501, 1001 / 251, 1001 / 126, 1001 / 63, 1001 / 32, 1001 / 16, 1001 / 8, 1001 / 4]),  # ceil halving
    ([(1001, 999), (500, 499), (250, 249), (125, 124), (62, 62)],
     [1, 2.003, 4.0081, 8.0322, 16.13]),  # floor halving
    ([(50, 50)], [1]),
])
def test_real_pyramids_pass(dims, downsamples):
    assert pyramid_problem(dims, downsamples) is None


@pytest.mark.parametrize("dims, downsamples, message", [
    ([(4096, 2048), (2048, 1024), (600, 600)], [1, 2, 5.12], "level 2 .600×600 px. is not a reduced copy"),
    ([(4096, 2048), (1024, 1024)], [1, 3], "width is reduced 4× but its height 2×"),
    ([(4096, 2048), (1024, 512), (2048, 1024)], [1, 4, 2], "out of order"),
    ([(4096, 2048), (4096, 2048)], [1, 1], "out of order"),
    ([(4096, 2048), (2048, 1024)], [1, 3], "declared reduced 3×"),
    ([(4096, 2048), (8192, 4096)], [1, 0.5], "out of order"),
    ([(4096, 2048)], [2], "not 1"),
])
def test_inconsistent_pyramids_are_named(dims, downsamples, message):
    assert re.search(message, pyramid_problem(dims, downsamples) or "")


def test_a_label_page_flagged_reduced_resolution_is_refused(tmp_path):
    image = scan()
    path = tmp_path / "scan.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(256, 256), photometric="rgb", resolution=(40000, 40000), resolutionunit="CENTIMETER")
        tif.write(image[::2, ::2].copy(), tile=(256, 256), photometric="rgb", subfiletype=1)
        tif.write(label_image(), tile=(256, 256), photometric="rgb", subfiletype=1, description="label")
    with pytest.raises(SlideError, match=r"level 2 \(600×600 px\) is not a reduced copy of level 0 \(4096×2048 px\)"):
        inspect_slide(path)


def test_a_consistent_generic_pyramid_still_opens(tmp_path):
    image = scan()
    path = tmp_path / "scan.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(256, 256), photometric="rgb", resolution=(40000, 40000), resolutionunit="CENTIMETER")
        tif.write(image[::2, ::2].copy(), tile=(256, 256), photometric="rgb", subfiletype=1)
        tif.write(image[::4, ::4].copy(), tile=(256, 256), photometric="rgb", subfiletype=1)
    info = inspect_slide(path)
    assert info.level_dimensions == [[4096, 2048], [2048, 1024], [1024, 512]] and info.level_downsamples == [1, 2, 4]


def write_ome(path, levels):
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(levels[0], tile=(256, 256), photometric="rgb", subifds=len(levels) - 1,
                  metadata={"axes": "YXS", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25})
        for level in levels[1:]:
            tif.write(level, tile=(256, 256), photometric="rgb", subfiletype=1)


def test_an_ome_tiff_level_reduced_in_width_only_is_refused(tmp_path):
    """The OME reader took the downsample from the width alone: a level halved in width but not in height
    was read as a 2× level (every y coordinate of it off by 2×)."""
    image = scan(1024, 1024)
    path = tmp_path / "field.ome.tiff"
    write_ome(path, [image, image[:, ::2].copy()])
    with pytest.raises(SlideError, match=r"level 1 \(512×1024 px\) is not a reduced copy"):
        inspect_slide(path)


def test_an_ome_tiff_pyramid_downsample_is_the_mean_of_both_ratios(tmp_path):
    from slideio.ometiff import OmeTiffSlide

    image = scan(1001, 1000)
    path = tmp_path / "field.ome.tiff"
    write_ome(path, [image, image[::2, ::2].copy()])  # 501 x 500
    slide = OmeTiffSlide(str(path))
    try:
        assert slide.level_dimensions == ((1000, 1001), (500, 501))
        assert slide.level_downsamples[1] == pytest.approx((1000 / 500 + 1001 / 501) / 2)
    finally:
        slide.close()
    assert inspect_slide(path).format == "ome-tiff"


@pytest.mark.django_db
def test_the_ingest_of_a_label_level_stores_nothing(media_root, tmp_path):
    from cases.models import Slide
    from cases.services import IngestError, IngestSource, do_ingest_slide
    from tests.conftest import stored_files

    image = scan()
    path = tmp_path / "scan.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(256, 256), photometric="rgb", resolution=(40000, 40000), resolutionunit="CENTIMETER")
        tif.write(image[::2, ::2].copy(), tile=(256, 256), photometric="rgb", subfiletype=1)
        tif.write(label_image(), tile=(256, 256), photometric="rgb", subfiletype=1)
    with pytest.raises(IngestError, match="scan.tif: level 2 .* may store a label"):
        do_ingest_slide([IngestSource(name=path.name, path=path)])
    assert Slide.objects.count() == 0 and stored_files(media_root) == []
