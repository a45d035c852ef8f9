"""Slide ingest through the service: every shared slide format, and every kind of bad input."""

import shutil

import numpy as np
import pytest
from PIL import Image

from cases.choices import MppSource
from cases.models import Slide
from cases.services import IngestError, IngestSource, do_ingest_slide, do_set_slide_mpp
from tests.conftest import SLIDES, shared_slide, stored_files

pytestmark = pytest.mark.django_db

# name, format, (width, height), levels, mpp or None
READABLE = [
    ("CMU-1-Small-Region.svs", "aperio", (2220, 2967), 1, 0.499),
    ("small.svs", "aperio", (16, 16), 1, 0.499),
    ("boxes.tiff", "generic-tiff", (300, 250), 4, None),  # its TIFF resolution (352 µm/px) is not a scan's
    ("test3-DAPI-2-387.ndpi", "hamamatsu", (3968, 4864), 7, 0.2282),
    ("sm_image.dcm", "dicom", (50, 50), 1, 0.499),
]


def ingest(path, **kwargs):
    return do_ingest_slide([IngestSource(name=path.name, path=path)], **kwargs)


@pytest.mark.parametrize("name,fmt,size,levels,mpp", READABLE)
def test_every_shared_slide_ingests_with_its_metadata(media_root, name, fmt, size, levels, mpp):
    result = ingest(shared_slide(name))
    slide = result.slide
    assert result.created
    assert (slide.format, (slide.width, slide.height), slide.level_count) == (fmt, size, levels)
    assert len(slide.level_dimensions) == levels
    if mpp is None:
        assert slide.mpp_x is None and slide.needs_mpp and slide.mpp_source == MppSource.MISSING
    else:
        assert slide.mpp_x == pytest.approx(mpp, abs=1e-3) and slide.mpp_source == MppSource.SCANNER
    assert len(slide.sha256) == 64
    stored = media_root / slide.file.name
    assert stored.read_bytes() == shared_slide(name).read_bytes()
    thumb = Image.open(media_root / slide.thumbnail.name)
    assert max(thumb.size) <= 512 and min(thumb.size) >= 1


def test_aperio_metadata_includes_objective_and_associated_images():
    slide = ingest(shared_slide("CMU-1-Small-Region.svs")).slide
    assert slide.objective_power == 20
    assert set(slide.associated_images) == {"label", "macro", "thumbnail"}
    assert slide.vendor == "Leica Aperio"
    assert slide.properties["openslide.vendor"] == "aperio"


def test_same_file_twice_is_stored_once(media_root):
    first = ingest(shared_slide("small.svs"))
    files_after_first = sorted(stored_files(media_root))
    second = ingest(shared_slide("small.svs"))
    assert second.duplicate and second.slide.pk == first.slide.pk
    assert Slide.objects.count() == 1
    assert sorted(stored_files(media_root)) == files_after_first


def test_slide_without_mpp_is_flagged_and_mpp_can_be_set():
    slide = ingest(shared_slide("boxes.tiff")).slide
    assert slide.needs_mpp
    do_set_slide_mpp(slide, 0.25)
    slide.refresh_from_db()
    assert (slide.mpp_x, slide.mpp_y, slide.mpp_source) == (0.25, 0.25, MppSource.USER)
    with pytest.raises(IngestError, match="plausible"):
        do_set_slide_mpp(slide, -1)
    with pytest.raises(IngestError, match="plausible"):
        do_set_slide_mpp(slide, float("nan"))


def test_mpp_given_at_ingest_overrides_missing_one():
    slide = ingest(shared_slide("boxes.tiff"), mpp=0.5).slide
    assert (slide.mpp_x, slide.mpp_source) == (0.5, MppSource.USER)


def test_plain_png_jpeg_and_striped_tiff_fields_are_single_level_slides(tmp_path):
    rgb = (np.random.default_rng(1).random((300, 400, 3)) * 255).astype(np.uint8)
    for suffix in ("png", "jpg", "tif"):
        path = tmp_path / f"field.{suffix}"
        Image.fromarray(rgb).save(path)
        slide = ingest(path).slide
        assert (slide.width, slide.height, slide.level_count) == (400, 300, 1)
        assert slide.needs_mpp
        assert slide.format == f"image-{suffix}"


def test_ome_tiff_pyramid_is_read_with_tifffile(tmp_path):
    """Synthetic OME-TIFF (random pixels): OpenSlide sees one flat level, tifffile the pyramid."""
    import tifffile

    rgb = (np.random.default_rng(2).random((1024, 768, 3)) * 255).astype(np.uint8)
    path = tmp_path / "synthetic.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(rgb, tile=(256, 256), subifds=1, photometric="rgb",
                  metadata={"axes": "YXS", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25})
        tif.write(rgb[::2, ::2], tile=(256, 256), subfiletype=1, photometric="rgb")
    slide = ingest(path).slide
    assert slide.format == "ome-tiff"
    assert slide.level_dimensions == [[768, 1024], [384, 512]]
    assert slide.mpp_x == pytest.approx(0.25)


def test_a_16_bit_ome_tiff_reads_one_pixel_the_same_in_every_tile(tmp_path):
    """SYNTHETIC 16-bit OME-TIFF: one scale to 8 bits for the whole file (each region stretched to its own
    brightest pixel read tissue as white glass in a tile holding only tissue)."""
    import tifffile

    from slideio.slidefile import open_slide

    data = np.full((1024, 1024, 3), 60000, np.uint16)  # glass
    data[:, 512:] = 20000  # tissue, right half
    path = tmp_path / "field16.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(data, tile=(256, 256), photometric="rgb",
                  metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    assert ingest(path).slide.format == "ome-tiff"
    handle = open_slide(path)
    tissue_only = np.asarray(handle.read_region((768, 0), 0, (256, 256)))[0, 0, :3]
    straddling = np.asarray(handle.read_region((384, 0), 0, (256, 256)))[0, 255, :3]
    glass = np.asarray(handle.read_region((0, 0), 0, (256, 256)))[0, 0, :3]
    assert tissue_only.tolist() == straddling.tolist() == [78, 78, 78]  # 20000 / 65535 * 255
    assert glass.tolist() == [233, 233, 233]


def test_a_floating_point_ome_tiff_is_refused_at_ingest(tmp_path, media_root):
    import tifffile

    path = tmp_path / "float.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(np.full((512, 512, 3), 0.5, np.float32), tile=(256, 256), photometric="rgb",
                  metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    with pytest.raises(IngestError, match="float32"):
        ingest(path)
    assert not Slide.objects.exists()


def test_a_declared_but_implausible_y_resolution_is_not_replaced_by_x(tmp_path, media_root):
    """0.5 µm in x, 352 µm in y: neither is taken (the slide asks for its resolution), rather than the
    pixels silently made square, which the square-pixel check at analysis could then never see."""
    import tifffile

    rgb = np.full((1024, 1024, 3), 200, np.uint8)
    path = tmp_path / "xy.tif"
    with tifffile.TiffWriter(path) as tif:
        for k in range(2):
            f = 2 ** k
            tif.write(rgb[::f, ::f], tile=(256, 256), photometric="rgb", resolution=(2e4 / f, 28.3465 / f),
                      resolutionunit="CENTIMETER", subfiletype=0 if k == 0 else 1, metadata=None)
    slide = ingest(path).slide
    assert float(slide.properties["openslide.mpp-y"]) > 300
    assert (slide.mpp_x, slide.mpp_y, slide.mpp_source) == (None, None, MppSource.MISSING)


def test_uploading_a_stored_file_again_never_drops_what_the_upload_asked_for(personas, media_root):
    """The same file again: its missing resolution is set from the upload; a conflicting resolution, marker or
    case is refused naming the stored slide (it came back silently, the user's values dropped)."""
    from tests.factories import CaseFactory

    boxes = shared_slide("boxes.tiff")
    first = ingest(boxes)
    assert first.slide.mpp_source == MppSource.MISSING
    again = ingest(boxes, mpp=0.25)
    assert again.duplicate and again.slide.pk == first.slide.pk
    again.slide.refresh_from_db()
    assert again.slide.mpp_x == 0.25 and again.slide.mpp_source == MppSource.USER
    with pytest.raises(IngestError, match="at 0.25 µm/px, not 0.5"):
        ingest(boxes, mpp=0.5)
    with pytest.raises(IngestError, match=f"stained for PD-L1, not Ki67: .*PATCH /api/slides/{first.slide.pk}/"):
        ingest(boxes, marker="Ki67")
    assert ingest(boxes, mpp=0.25, marker="PD-L1").slide.pk == first.slide.pk  # agreeing: the stored slide
    # Uploaded into a case: the unfiled slide is filed there; uploaded into another case, the scan is stored
    # again as that case's slide (a slide stays with the case its reports state); again into it: that one.
    case_a = personas["case"]
    case_b = CaseFactory(patient__department=case_a.department)
    with pytest.raises(IngestError, match="not Ki67"):  # refused: the unfiled slide is not filed either
        ingest(boxes, case=case_a, marker="Ki67")
    first.slide.refresh_from_db()
    assert first.slide.case is None
    assert ingest(boxes, case=case_a).slide.pk == first.slide.pk
    first.slide.refresh_from_db()
    assert first.slide.case == case_a
    in_b = ingest(boxes, case=case_b)
    assert not in_b.duplicate and in_b.slide.case == case_b and in_b.slide.pk != first.slide.pk
    assert ingest(boxes, case=case_b).slide.pk == in_b.slide.pk
    assert ingest(boxes, case=case_a).slide.pk == first.slide.pk


def test_dicom_series_folder_is_one_slide_whatever_the_file_order(tmp_path):
    series = [IngestSource(name="sm_image.dcm", path=shared_slide("sm_image.dcm"))]
    first = do_ingest_slide(series)
    again = do_ingest_slide(list(reversed(series)))
    assert again.duplicate and again.slide.pk == first.slide.pk


# --- bad input: a clear message, no Slide row, no file left in storage ----------------------

def _truncated(tmp_path, name, keep=0.5):
    source = shared_slide(name)
    data = source.read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _corrupt(tmp_path, name):
    source = shared_slide(name)
    data = bytearray(source.read_bytes())
    start = len(data) // 3
    data[start:start + 200000] = bytes(len(data[start:start + 200000]))
    path = tmp_path / ("corrupt-" + name)
    path.write_bytes(bytes(data))
    return path


BAD_INPUTS = {
    "text file": (lambda tmp: _write(tmp / "notes.svs", b"this is not a slide\n" * 100), "not a readable .svs slide"),
    "text file as png": (lambda tmp: _write(tmp / "notes.png", b"this is not an image\n" * 100), "not a slide"),
    "zero bytes": (lambda tmp: _write(tmp / "empty.svs", b""), "empty"),
    "truncated svs": (lambda tmp: _truncated(tmp, "CMU-1-Small-Region.svs"), "truncated"),
    "truncated ndpi": (lambda tmp: _truncated(tmp, "test3-DAPI-2-387.ndpi", 0.7), "truncated"),
    "corrupt svs tiles": (lambda tmp: _corrupt(tmp, "CMU-1-Small-Region.svs"), "corrupt"),
    "unsupported codec": (lambda tmp: _copy(shared_slide("sm_image_jpegls.dcm"), tmp), "Unsupported transfer syntax"),
    "truncated png": (lambda tmp: _truncated_png(tmp), "truncated|corrupt"),
}


def _write(path, data):
    path.write_bytes(data)
    return path


def _copy(source, folder):
    return shutil.copy(source, folder / source.name) and folder / source.name


def _truncated_png(tmp):
    path = tmp / "field.png"
    Image.fromarray((np.random.default_rng(3).random((400, 400, 3)) * 255).astype(np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:20000])
    return path


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_is_rejected_and_leaves_nothing(media_root, tmp_path, kind):
    make, message = BAD_INPUTS[kind]
    source_dir = tmp_path / "src"
    source_dir.mkdir()
    path = make(source_dir)
    with pytest.raises(IngestError, match=message):
        ingest(path)
    assert Slide.objects.count() == 0
    assert stored_files(media_root) == []


@pytest.mark.parametrize("name", ["../etc/passwd.svs", "a/b.svs", "..\\x.svs", "/abs.svs", "..", ".hidden.svs", ""])
def test_file_names_with_path_parts_are_rejected(media_root, name):
    with pytest.raises(IngestError):
        do_ingest_slide([IngestSource(name=name, path=shared_slide("small.svs"))])
    assert Slide.objects.count() == 0
    assert stored_files(media_root) == []


def test_bad_mpp_and_marker_are_rejected_before_anything_is_stored(media_root):
    for kwargs, message in [({"mpp": 0}, "plausible"), ({"mpp": float("nan")}, "plausible"),
                            ({"marker": "CD8"}, "unknown marker")]:
        with pytest.raises(IngestError, match=message):
            ingest(shared_slide("small.svs"), **kwargs)
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_failed_database_write_removes_the_stored_files(media_root, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(Slide.objects, "create", fail)
    with pytest.raises(RuntimeError):
        ingest(shared_slide("small.svs"))
    assert stored_files(media_root) == []


def test_shared_slides_folder_is_present():
    """The suite reads real slides from ../shared; fail loudly (not skip) if CI lost them."""
    assert SLIDES.is_dir(), f"{SLIDES} missing"
