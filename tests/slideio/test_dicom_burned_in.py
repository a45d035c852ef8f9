"""A DICOM scan whose header says identifying text is burned into its pixels (BurnedInAnnotation or
SpecimenLabelInImage YES) is refused: its levels are what annotators see, and nothing redacts them.
The label and overview images may show the label (pathologists only see those)."""

import pydicom
import pytest

from slideio.slidefile import SlideError, inspect_slide
from tests.conftest import shared_slide
from tests.dicom_series import build_synthetic_series


def flagged_copy(tmp_path, **flags):
    header = pydicom.dcmread(shared_slide("sm_image.dcm"))
    for tag, value in flags.items():
        setattr(header, tag, value)
    path = tmp_path / "flagged" / "scan.dcm"
    path.parent.mkdir()
    header.save_as(path)
    return path


@pytest.mark.parametrize("flags, named", [
    ({"BurnedInAnnotation": "YES"}, "BurnedInAnnotation YES"),
    ({"SpecimenLabelInImage": "YES"}, "SpecimenLabelInImage YES"),
    ({"BurnedInAnnotation": "YES", "SpecimenLabelInImage": "YES"}, "BurnedInAnnotation YES and SpecimenLabelInImage"),
])
def test_a_scan_with_burned_in_text_is_refused(tmp_path, flags, named):
    with pytest.raises(SlideError, match=f"scan.dcm: the image declares {named}"):
        inspect_slide(flagged_copy(tmp_path, **flags))


def test_a_burned_in_level_of_a_series_is_refused(tmp_path):
    series = build_synthetic_series(tmp_path / "s", levels=2)
    header = pydicom.dcmread(series.files[1])
    header.BurnedInAnnotation = "YES"
    header.save_as(series.files[1])
    with pytest.raises(SlideError, match="synthetic-level1.dcm: the image declares BurnedInAnnotation YES"):
        inspect_slide(series.files[0])


def test_a_label_image_showing_the_label_is_fine(tmp_path):
    series = build_synthetic_series(tmp_path / "s", levels=2, label=True)
    header = pydicom.dcmread(series.files[-1])
    header.BurnedInAnnotation = header.SpecimenLabelInImage = "YES"  # what a LABEL image is
    header.save_as(series.files[-1])
    assert inspect_slide(series.files[0]).associated_images == ["label"]


@pytest.mark.django_db
def test_the_ingest_stores_nothing(media_root, tmp_path):
    from cases.models import Slide
    from cases.services import IngestError, IngestSource, do_ingest_slide
    from tests.conftest import stored_files

    path = flagged_copy(tmp_path, BurnedInAnnotation="YES")
    with pytest.raises(IngestError, match="scan.dcm: the image declares BurnedInAnnotation YES"):
        do_ingest_slide([IngestSource(name=path.name, path=path)])
    assert Slide.objects.count() == 0 and stored_files(media_root) == []
