"""What a killed upload or ingest leaves in the temporary folder is removed once it is old, never what
is in progress."""

import os
import time

import pytest
from django.conf import settings

from cases.uploads import TEMP_MAX_AGE_SECONDS, sweep_stale_temporary_files

pytestmark = pytest.mark.django_db


def age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_staging_folders_and_uploads_are_removed_and_fresh_ones_kept(media_root):
    tmp = media_root / "tmp"
    tmp.mkdir(exist_ok=True)
    assert str(tmp) == str(settings.FILE_UPLOAD_TEMP_DIR)
    killed = tmp / "ingest-dead"
    killed.mkdir()
    (killed / "slide.svs").write_bytes(b"x" * 1000)
    spill = tmp / "spill-dead"
    spill.write_bytes(b"y")
    in_progress = tmp / "ingest-live"
    in_progress.mkdir()
    (in_progress / "slide.svs").write_bytes(b"z")  # written just now: a validation under way
    upload = tmp / "tmpab12cd.upload.svs"  # Django's temporary upload file of a killed request
    upload.write_bytes(b"u")
    foreign = tmp / "someone-elses.dat"  # not one of ours: never touched, however old
    foreign.write_bytes(b"f")
    for path in (killed / "slide.svs", killed, spill, upload, foreign):
        age(path, TEMP_MAX_AGE_SECONDS + 60)
    age(in_progress, TEMP_MAX_AGE_SECONDS + 60)  # an old folder with a fresh file is still in use
    assert sweep_stale_temporary_files() == ["ingest-dead", "spill-dead", "tmpab12cd.upload.svs"]
    assert sorted(p.name for p in tmp.iterdir()) == ["ingest-live", "someone-elses.dat"]


def test_a_temporary_folder_that_is_media_root_is_never_swept(media_root, settings):
    settings.FILE_UPLOAD_TEMP_DIR = str(media_root)  # a host's misconfiguration
    old_slides = media_root / "ingest-like-name"
    old_slides.mkdir()
    age(old_slides, TEMP_MAX_AGE_SECONDS + 60)
    assert sweep_stale_temporary_files() == [] and old_slides.exists()


def test_the_sweep_is_scheduled():
    from django_q.models import Schedule

    assert Schedule.objects.filter(func="cases.uploads.sweep_stale_temporary_files", schedule_type="H").exists()
