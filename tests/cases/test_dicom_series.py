"""A SYNTHETIC multi-file DICOM WSI series is ingested as one multi-level slide.

The series is built at test time (tests/dicom_series.py) from the highdicom test file
sm_image.dcm: level 0 is 256×256 px at 0.25 µm/px, level 1 128×128 px at 0.5 µm/px, each level
a file of its own, tiles of 64 px, pixels four flat-coloured quadrants. Nothing is patient data.
"""

import json
import re

import openslide
import pytest
from django.core.management import call_command
from PIL import Image
from rest_framework.test import APIClient

from cases.choices import MppSource
from cases.models import Slide
from cases.services import IngestError, IngestSource, do_ingest_slide
from tests.conftest import stored_files
from tests.dicom_series import LABEL_COLOUR, QUADRANT_COLOURS, build_synthetic_series

pytestmark = pytest.mark.django_db

CORNERS = {"top_left": (0, 0), "top_right": (1, 0), "bottom_left": (0, 1), "bottom_right": (1, 1)}


@pytest.fixture
def series(tmp_path):
    """The synthetic two-level series, in a folder outside slide storage."""
    return build_synthetic_series(tmp_path / "synthetic-series")


def sources(files):
    return [IngestSource(name=f.name, path=f) for f in files]


def assert_quadrants(image):
    """The four quadrant colours at the four corners of an RGB(A) image."""
    width, height = image.size
    for quadrant, (right, bottom) in CORNERS.items():
        x, y = right * (width - 1), bottom * (height - 1)
        assert image.getpixel((x, y))[:3] == QUADRANT_COLOURS[quadrant], (quadrant, (x, y))


def assert_the_synthetic_slide(slide, series, file_count=2):
    assert slide.format == "dicom" and slide.vendor == "DICOM"
    assert slide.file_count == file_count
    assert (slide.width, slide.height) == (256, 256)
    assert slide.level_count == 2
    assert slide.level_dimensions == [[256, 256], [128, 128]]
    assert slide.level_downsamples == [1.0, 2.0]
    # PixelSpacing 0.00025 mm = 0.25 µm per pixel, read from the scanner's (synthetic) metadata
    assert slide.mpp_x == pytest.approx(0.25) and slide.mpp_y == pytest.approx(0.25)
    assert slide.mpp_source == MppSource.SCANNER and not slide.needs_mpp
    assert slide.properties["dicom.SeriesInstanceUID"] == _series_uid(series.files[0])


def _series_uid(path):
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


# --- the synthetic series itself ---------------------------------------------------------------

def test_openslide_reads_the_synthetic_series_as_one_two_level_slide(series):
    """Guard for the builder: OpenSlide sees one pyramid, and each level shows the pattern."""
    for member in series.files:  # any member finds its siblings in the folder
        with openslide.OpenSlide(str(member)) as slide:
            assert slide.detect_format(str(member)) == "dicom"
            assert slide.level_count == 2
            assert slide.level_dimensions == ((256, 256), (128, 128))
            assert slide.properties[openslide.PROPERTY_NAME_MPP_X] == "0.25"
            for level in (0, 1):
                assert_quadrants(slide.read_region((0, 0), level, slide.level_dimensions[level]))
                # 2×2 px at the centre, where four tiles and the four quadrants meet
                # (read_region takes level-0 coordinates)
                middle = slide.level_dimensions[level][0] // 2 - 1
                downsample = int(slide.level_downsamples[level])
                centre = slide.read_region((middle * downsample, middle * downsample), level, (2, 2))
                assert [centre.getpixel(p)[:3] for p in [(0, 0), (1, 0), (0, 1), (1, 1)]] == list(
                    QUADRANT_COLOURS.values())


# --- (1) ingest through the service ------------------------------------------------------------

def test_both_files_are_ingested_as_one_slide_stored_in_one_folder(media_root, series):
    result = do_ingest_slide(sources(series.files))
    slide = result.slide
    assert result.created and Slide.objects.count() == 1
    assert_the_synthetic_slide(slide, series)
    assert slide.original_name == "synthetic-level0.dcm"  # the file OpenSlide opens
    folder = (media_root / slide.file.name).parent
    assert folder.parent.parent == media_root / "slides"
    assert sorted(p.name for p in folder.iterdir()) == [".thumbnail.png", "synthetic-level0.dcm", "synthetic-level1.dcm"]
    for original in series.files:
        assert (folder / original.name).read_bytes() == original.read_bytes()
    assert slide.size_bytes == sum(f.stat().st_size for f in series.files)
    # every stored file is in that one folder (nothing left in staging)
    assert {p.parent for p in stored_files(media_root)} == {folder}
    # the stored copy still opens as the two-level slide, and the thumbnail shows the pattern
    with openslide.OpenSlide(slide.path) as stored:
        assert stored.level_count == 2
        assert_quadrants(stored.read_region((0, 0), 1, (128, 128)))
    with Image.open(media_root / slide.thumbnail.name) as thumb:
        assert thumb.size == (256, 256)
        assert_quadrants(thumb.convert("RGB"))


def test_a_label_image_of_the_series_becomes_an_associated_image(tmp_path):
    series = build_synthetic_series(tmp_path / "with-label", label=True, seed="synthetic-with-label")
    slide = do_ingest_slide(sources(series.files)).slide
    assert_the_synthetic_slide(slide, series, file_count=3)
    assert slide.associated_images == ["label"]
    # the main file is the largest (the full-resolution volume), not the first name (the label)
    assert slide.original_name == "synthetic-level0.dcm"
    with openslide.OpenSlide(slide.path) as stored:
        assert stored.level_count == 2
        assert_quadrants(stored.read_region((0, 0), 1, (128, 128)))
        label = stored.associated_images["label"]
    assert label.size == (96, 32) and label.getpixel((0, 0))[:3] == LABEL_COLOUR
    assert label.getpixel((48, 16))[:3] == (0, 0, 0)


# --- (2) the same series again, in the other order: a duplicate -------------------------------

def test_the_series_in_the_other_order_is_a_duplicate_stored_once(media_root, series):
    first = do_ingest_slide(sources(series.files))
    files = sorted(stored_files(media_root))
    again = do_ingest_slide(sources(reversed(series.files)))
    assert again.duplicate and again.slide.pk == first.slide.pk
    assert Slide.objects.count() == 1 and sorted(stored_files(media_root)) == files


def test_api_multi_file_upload_then_the_other_order_is_a_duplicate(personas, media_root, series):
    # The series carries sm_image.dcm's fictitious patient and accession: a case of another would refuse it.
    case = personas["case"]
    case.patient.mrn, case.accession = "AA01", "S19-1_A_1_1"
    case.patient.save()
    case.save()
    api = APIClient()
    api.force_authenticate(personas["pathologist"])

    def upload(files):
        handles = [open(f, "rb") for f in files]
        try:
            return api.post("/api/slides/", {"files": handles, "case": personas["case"].accession},
                            format="multipart")
        finally:
            for fh in handles:
                fh.close()

    created = upload(list(reversed(series.files)))  # level 1 first: the order must not matter
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["file_count"], body["format"], body["level_count"]) == (2, "dicom", 2)
    assert (body["width"], body["height"], body["case"]) == (256, 256, personas["case"].pk)
    assert body["mpp_x"] == pytest.approx(0.25) and body["duplicate"] is False
    assert body["original_name"] == "synthetic-level0.dcm"
    files = sorted(stored_files(media_root))
    assert len(files) == 3  # two members and the thumbnail; no upload temp files left behind

    again = upload(series.files)
    assert again.status_code == 200, again.json()
    assert again.json()["duplicate"] is True and again.json()["id"] == body["id"]
    assert "already stored" in again.json()["detail"]
    assert Slide.objects.count() == 1 and sorted(stored_files(media_root)) == files


# --- (3) the management command on the folder --------------------------------------------------

def test_import_slide_on_the_series_folder(capsys, media_root, series):
    call_command("import_slide", str(series.folder))
    data = json.loads(capsys.readouterr().out)
    slide = Slide.objects.get()
    assert data["id"] == slide.pk and data["duplicate"] is False
    assert (data["file_count"], data["format"], data["level_count"]) == (2, "dicom", 2)
    assert data["level_dimensions"] == [[256, 256], [128, 128]]
    assert data["path"] == slide.path and slide.path.endswith("synthetic-level0.dcm")
    assert_the_synthetic_slide(slide, series)

    call_command("import_slide", str(series.folder))
    assert json.loads(capsys.readouterr().out)["duplicate"] is True and Slide.objects.count() == 1


# --- (4) a damaged member: rejected, nothing stored --------------------------------------------

def _truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("member,keep,message", [
    # the main file (first by name), pixel data cut in half: OpenSlide opens it, reading fails
    pytest.param(0, 0.5, r"corrupt or truncated", id="level0-pixel-data-cut"),
    # the main file with its header cut: OpenSlide cannot open it at all
    pytest.param(0, 0.01, r"could not be opened|synthetic-level0\.dcm", id="level0-header-cut"),
    # level 1's pixel data cut: it opens as a level; every level's pixels are probed
    pytest.param(1, 0.5, r"corrupt or truncated|synthetic-level1\.dcm", id="level1-pixel-data-cut"),
    # level 1's header cut: OpenSlide alone would silently drop the file; each member is checked
    pytest.param(1, 0.01, r"synthetic-level1\.dcm", id="level1-header-cut"),
])
def test_a_series_with_a_truncated_file_is_rejected_and_leaves_nothing(media_root, series, member, keep, message):
    _truncate(series.files[member], keep)
    try:
        do_ingest_slide(sources(series.files))
    except IngestError as exc:
        assert re.search(message, str(exc)), str(exc)
    else:
        slide = Slide.objects.get()
        pytest.fail(f"accepted: {slide.file_count} files, {slide.level_count} level(s)")
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_files_of_two_different_series_are_rejected(media_root, tmp_path, series):
    other = build_synthetic_series(tmp_path / "other-series", seed="another-synthetic-series")
    mixed = [series.files[0], other.files[1]]  # level 0 of one slide, level 1 of another
    try:
        do_ingest_slide(sources(mixed))
    except IngestError:
        pass
    else:
        slide = Slide.objects.get()
        pytest.fail(f"accepted: {slide.file_count} files, {slide.level_count} level(s)")
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_several_files_that_are_not_one_dicom_series_are_rejected(media_root, tmp_path):
    from tests.conftest import shared_slide

    files = [shared_slide("small.svs"), shared_slide("CMU-1-Small-Region.svs")]
    with pytest.raises(IngestError, match="only a DICOM series can be several files"):
        do_ingest_slide(sources(files))
    assert Slide.objects.count() == 0 and stored_files(media_root) == []
