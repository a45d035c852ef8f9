"""Ingest edge cases from a review: a slide named like its thumbnail, decoders' own error types, names
too long for the file system, a full disk while the slide is stored. Each: a clear error or an intact
slide, never a server error, nothing left behind."""

import errno
import hashlib
import shutil

import numpy as np
import pytest
import tifffile

from cases import services
from cases.models import Slide
from cases.services import IngestError, IngestSource, IngestStorageFull, do_ingest_slide
from tests.conftest import shared_slide, stored_files

pytestmark = pytest.mark.django_db


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_slide_named_thumbnail_png_keeps_its_pixels(media_root, tmp_path):
    original = shared_slide("CMU-1-Small-Region.svs")
    copy = tmp_path / "thumbnail.png"
    shutil.copy(original, copy)
    slide = do_ingest_slide([IngestSource(name="thumbnail.png", path=copy)]).slide
    stored = media_root / slide.file.name
    assert stored.name == "thumbnail.png" and sha256(stored) == sha256(original) == slide.sha256
    assert slide.thumbnail.name != slide.file.name and (media_root / slide.thumbnail.name).exists()


def test_a_tiff_whose_tiles_do_not_decode_is_refused_with_a_message(media_root, tmp_path):
    path = tmp_path / "scrambled.tiff"
    rng = np.random.default_rng(0)
    tifffile.imwrite(path, rng.integers(0, 255, (1024, 1024, 3), np.uint8), tile=(256, 256), compression="zlib",
                     photometric="rgb")
    with tifffile.TiffFile(path) as tif:
        offsets, counts = tif.pages[0].dataoffsets, tif.pages[0].databytecounts
    data = bytearray(path.read_bytes())
    for offset, count in zip(offsets, counts):  # every tile's deflate stream made garbage
        data[offset:offset + count] = rng.integers(0, 255, count, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(IngestError):
        do_ingest_slide([IngestSource(name=path.name, path=path)])
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_a_name_too_long_for_the_file_system_is_refused(media_root):
    name = "切片" * 52 + ".svs"  # 108 characters, 316 bytes
    with pytest.raises(IngestError, match="longer than 255 bytes"):
        do_ingest_slide([IngestSource(name=name, path=shared_slide("small.svs"))])
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_a_full_disk_while_storing_says_so_and_keeps_nothing(media_root, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(services, "_register", full)
    with pytest.raises(IngestStorageFull, match="storage is full"):
        do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))])
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_a_decoders_own_error_type_becomes_a_clear_refusal(media_root, monkeypatch):
    class Jpeg8Error(Exception):  # imagecodecs' type: not a SlideError, and it may not even unpickle
        pass

    def decoder_fails(*args, **kwargs):
        raise Jpeg8Error("corrupt JPEG data")

    monkeypatch.setattr(services, "run_limited", decoder_fails)
    with pytest.raises(IngestError, match=r"small.svs: the file cannot be decoded \(Jpeg8Error\)"):
        do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))])
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_the_api_answers_507_when_the_disk_fills_while_storing(personas, media_root, monkeypatch):
    from rest_framework.test import APIClient

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(services, "_register", full)
    client = APIClient()
    client.force_login(personas["pathologist"])
    with open(shared_slide("small.svs"), "rb") as fh:
        response = client.post("/api/slides/", {"files": fh}, format="multipart")
    assert response.status_code == 507 and "storage is full" in response.json()["detail"]
    assert Slide.objects.count() == 0
