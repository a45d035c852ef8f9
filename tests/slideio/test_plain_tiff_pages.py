"""A multi-page TIFF that OpenSlide does not read as a tiled pyramid is opened as a plain image, which
keeps its first page only: when a later page is larger (a strip-stored thumbnail first, the tiled scan
after it), the thumbnail would be stored as the slide. Such a file is refused."""

import numpy as np
import pytest
import tifffile

from slideio.slidefile import SlideError, inspect_slide, open_slide


def scan():
    image = np.full((2048, 4096, 3), 230, np.uint8)
    image[500:1500, 1000:3000] = (150, 80, 60)
    return image


def test_a_small_first_page_before_the_scan_is_refused(tmp_path):
    image = scan()
    path = tmp_path / "stripfirst.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(image[::32, ::32].copy(), photometric="rgb")  # 128 x 64, strips: OpenSlide refuses the file
        tif.write(image, tile=(256, 256), photometric="rgb")
    with pytest.raises(SlideError, match=r"first image \(128×64 px\) is not its largest \(image 2: 4096×2048 px\)"):
        inspect_slide(path)
    with pytest.raises(SlideError, match="not its largest"):
        open_slide(path)


def test_a_plain_multi_page_tiff_whose_first_page_is_largest_still_opens(tmp_path):
    image = scan()[:512, :512].copy()
    path = tmp_path / "field.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, photometric="rgb")
        tif.write(image[::4, ::4].copy(), photometric="rgb")
    info = inspect_slide(path)
    assert (info.format, info.width, info.height, info.level_count) == ("image-tif", 512, 512, 1)


@pytest.mark.django_db
def test_the_ingest_stores_nothing(media_root, tmp_path):
    from cases.models import Slide
    from cases.services import IngestError, IngestSource, do_ingest_slide
    from tests.conftest import stored_files

    image = scan()
    path = tmp_path / "stripfirst.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(image[::32, ::32].copy(), photometric="rgb")
        tif.write(image, tile=(256, 256), photometric="rgb")
    with pytest.raises(IngestError, match="stripfirst.tif: the TIFF's first image"):
        do_ingest_slide([IngestSource(name=path.name, path=path)])
    assert Slide.objects.count() == 0 and stored_files(media_root) == []
