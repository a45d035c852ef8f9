"""The levels of a DICOM series show the same area of the glass: a level whose pixel spacing times its
size contradicts level 0's (a crop, or an image of another scan carrying the series' UID) is refused,
since OpenSlide places levels by pixel size alone. SYNTHETIC series (tests/dicom_series.py)."""

import pydicom
import pytest

from slideio.slidefile import SlideError, inspect_slide
from tests.dicom_series import build_synthetic_series


def set_spacing(path, spacing_mm):
    header = pydicom.dcmread(path)
    header.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [spacing_mm, spacing_mm]
    header.save_as(path)


def test_a_level_whose_spacing_contradicts_its_size_is_refused(tmp_path):
    series = build_synthetic_series(tmp_path / "s", levels=3)
    set_spacing(series.files[1], 0.00025)  # 128 px at level 0's 0.25 µm: half the glass, not all of it
    with pytest.raises(SlideError, match=r"synthetic-level1.dcm: a level of 128×128 px at 0.25×0.25 µm/px covers "
                                         r"0.032×0.032 mm of the glass, but the full-resolution level covers "
                                         r"0.064×0.064 mm"):
        inspect_slide(series.files[0])


def test_consistent_levels_and_rounding_pass(tmp_path):
    series = build_synthetic_series(tmp_path / "s", levels=3)
    set_spacing(series.files[2], 0.00101)  # 1 % off the exact 0.001: a scanner's rounding
    info = inspect_slide(series.files[0])
    assert info.level_count == 3 and info.mpp_x == pytest.approx(0.25)


@pytest.mark.django_db
def test_the_ingest_stores_nothing(media_root, tmp_path):
    from cases.models import Slide
    from cases.services import IngestError, IngestSource, do_ingest_slide
    from tests.conftest import stored_files

    series = build_synthetic_series(tmp_path / "s", levels=2)
    set_spacing(series.files[1], 0.0001)
    with pytest.raises(IngestError, match="synthetic-level1.dcm: a level of 128×128 px"):
        do_ingest_slide([IngestSource(name=f.name, path=f) for f in series.files])
    assert Slide.objects.count() == 0 and stored_files(media_root) == []
