"""A generic tiled TIFF's resolution and level 0 come from its full-resolution page.

OpenSlide's generic-TIFF driver takes its mpp from the first page and its pyramid from the first page
plus the pages flagged reduced-resolution: a small thumbnail written first at 8 µm/px gave the slide
8 µm/px, and a full-resolution page not flagged reduced was left out (level 0 stored at half size)."""

import numpy as np
import pytest
import tifffile

from cases.choices import MppSource
from slideio.slidefile import SlideError, inspect_slide

PX_PER_CM_025 = 40000  # 0.25 µm/px
PX_PER_CM_8 = 1250  # 8 µm/px


def scan():
    image = np.full((2048, 4096, 3), 230, np.uint8)
    image[500:1500, 1000:3000] = (150, 80, 60)
    return image


def write(path, pages):
    """pages: (image, px per cm or None, subfiletype) in file order, all tiled."""
    with tifffile.TiffWriter(path) as tif:
        for image, per_cm, subfiletype in pages:
            extra = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"} if per_cm else {}
            tif.write(image, tile=(256, 256), photometric="rgb", subfiletype=subfiletype, **extra)
    return path


def test_a_full_resolution_page_left_out_of_the_pyramid_is_refused(tmp_path):
    image = scan()
    path = write(tmp_path / "thumbfirst.tif", [(image[::32, ::32].copy(), PX_PER_CM_8, 0),
                                               (image, PX_PER_CM_025, 0),
                                               (image[::2, ::2].copy(), 20000, 1)])
    with pytest.raises(SlideError, match=r"larger \(4096×2048 px, image 2\) than the pyramid OpenSlide reads from "
                                         r"it \(full resolution 2048×1024 px\)"):
        inspect_slide(path)


def test_the_first_pages_resolution_is_not_given_to_level_0(tmp_path):
    """Thumbnail first at 8 µm/px, the scan flagged reduced-resolution at 0.25: OpenSlide's 8 is not taken."""
    image = scan()
    path = write(tmp_path / "thumbfirst.tif", [(image[::16, ::16].copy(), PX_PER_CM_8, 0),
                                               (image, PX_PER_CM_025, 1)])
    info = inspect_slide(path)
    assert info.level_dimensions[0] == [4096, 2048]
    assert (info.mpp_x, info.mpp_y) == (None, None)


def test_a_level_0_page_without_resolution_gives_none(tmp_path):
    image = scan()
    path = write(tmp_path / "nores.tif", [(image[::16, ::16].copy(), PX_PER_CM_025 / 16, 0), (image, None, 1)])
    assert inspect_slide(path).mpp_x is None


def test_an_ordinary_generic_pyramid_keeps_its_resolution(tmp_path):
    image = scan()
    path = write(tmp_path / "scan.tif", [(image, PX_PER_CM_025, 0), (image[::2, ::2].copy(), None, 1),
                                         (image[::4, ::4].copy(), None, 1)])
    info = inspect_slide(path)
    assert (info.format, info.mpp_x, info.mpp_y) == ("generic-tiff", 0.25, 0.25)


@pytest.mark.django_db
def test_the_ingest_refuses_the_pyramid_without_the_scan_and_asks_for_an_untrusted_resolution(media_root, tmp_path):
    from cases.models import Slide
    from cases.services import IngestError, IngestSource, do_ingest_slide
    from tests.conftest import stored_files

    image = scan()
    left_out = write(tmp_path / "left.tif", [(image[::32, ::32].copy(), PX_PER_CM_8, 0), (image, PX_PER_CM_025, 0),
                                             (image[::2, ::2].copy(), 20000, 1)])
    with pytest.raises(IngestError, match="left.tif: the file holds an image larger"):
        do_ingest_slide([IngestSource(name=left_out.name, path=left_out)])
    assert Slide.objects.count() == 0 and stored_files(media_root) == []
    mixed = write(tmp_path / "mixed.tif", [(image[::16, ::16].copy(), PX_PER_CM_8, 0), (image, PX_PER_CM_025, 1)])
    slide = do_ingest_slide([IngestSource(name=mixed.name, path=mixed)]).slide
    assert (slide.width, slide.mpp_x, slide.mpp_source, slide.needs_mpp) == (4096, None, MppSource.MISSING, True)
