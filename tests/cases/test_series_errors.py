"""A refused DICOM series is explained with the user's file names, never the server's staging path
(/…/media/tmp/ingest-<uuid>/x.dcm), and in words, not libdicom's; opening its members is guarded
like decoding (a child process under the memory ceiling). SYNTHETIC series (tests/dicom_series.py)."""

import pydicom
import pytest

from cases import services
from cases.models import Slide
from cases.services import IngestError, IngestSource, do_ingest_slide
from slideio.slidefile import check_series_members
from tests.conftest import stored_files
from tests.dicom_series import _uid, build_synthetic_series

pytestmark = pytest.mark.django_db


def sources(folder):
    return [IngestSource(name=f.name, path=f) for f in sorted(folder.iterdir())]


def test_two_images_of_one_level_are_named_without_the_staging_path(media_root, tmp_path):
    series = build_synthetic_series(tmp_path / "s", levels=2)
    twin = pydicom.dcmread(series.files[0])
    uid = _uid("twin", "instance")
    twin.SOPInstanceUID = twin.file_meta.MediaStorageSOPInstanceUID = uid
    twin.save_as(tmp_path / "s" / "synthetic-level0b.dcm")
    with pytest.raises(IngestError) as refused:
        do_ingest_slide(sources(tmp_path / "s"))
    message = str(refused.value)
    assert "synthetic-level0b.dcm and another file are two images of the same level in the series" in message
    assert str(media_root) not in message and "ingest-" not in message and "/" not in message
    assert "unexpected image" not in message
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_the_member_check_runs_under_the_decoding_guard(media_root, tmp_path, monkeypatch):
    calls = []
    real = services.run_limited

    def spy(func, *args, **kwargs):
        calls.append((func, kwargs))
        return real(func, *args, **kwargs)

    monkeypatch.setattr(services, "run_limited", spy)
    series = build_synthetic_series(tmp_path / "s", levels=2)
    do_ingest_slide(sources(series.folder))
    guarded = [kwargs for func, kwargs in calls if func is check_series_members]
    assert len(guarded) == 1 and set(guarded[0]) == {"memory_bytes", "timeout_s"}


def test_any_staging_path_left_in_a_readers_message_is_removed(media_root, tmp_path, monkeypatch):
    def reader_names_the_path(func, main, *args, **kwargs):
        raise services.SlideError(f"Reading {main}: broken, see {main}")

    monkeypatch.setattr(services, "run_limited", reader_names_the_path)
    path = tmp_path / "field.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(IngestError) as refused:
        do_ingest_slide([IngestSource(name=path.name, path=path)])
    assert str(refused.value) == "field.png: Reading field.png: broken, see field.png"
    assert Slide.objects.count() == 0 and stored_files(media_root) == []
