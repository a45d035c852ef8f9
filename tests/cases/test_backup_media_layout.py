"""`manage.py backup` and how MEDIA_ROOT is laid out (docs/backup.md, Backing up a live system).

A backup inside MEDIA_ROOT copied itself (and each later one every earlier one); a symlinked folder
(slides on another volume) was not followed, so every backup failed with "deleted after the dump?
take the backup again", or the folder was skipped silently; a missing MEDIA_ROOT said the same.
"""

import json
import shutil

import pytest
from django.core.management import CommandError, call_command

from tests.viewer import SlideFactory

pytestmark = pytest.mark.django_db(transaction=True)


def backed_up(out) -> dict:
    return json.loads((out / "manifest.json").read_text())["media"]


def test_a_backup_inside_media_root_is_refused_and_nothing_is_written(media_root):
    out = media_root / "backups" / "night-1"
    with pytest.raises(CommandError, match="is inside MEDIA_ROOT .*: each backup would copy itself"):
        call_command("backup", str(out))
    assert not (media_root / "backups").exists()


def test_a_previous_backup_inside_media_root_is_refused(media_root, tmp_path):
    call_command("backup", str(tmp_path / "night-1"))
    shutil.move(tmp_path / "night-1", media_root / "night-1")
    with pytest.raises(CommandError, match="--previous .* is inside MEDIA_ROOT"):
        call_command("backup", str(tmp_path / "night-2"), previous=str(media_root / "night-1"))
    assert not (tmp_path / "night-2").exists() and not (tmp_path / "night-2.partial").exists()


def test_a_symlinked_slide_folder_is_followed(personas, media_root, tmp_path):
    """MEDIA_ROOT/slides links to another volume: the slide the database names is backed up, and so
    is a linked folder no record names."""
    volume = tmp_path / "slide-volume"
    (volume / "ab").mkdir(parents=True)
    (volume / "ab" / "slide.tiff").write_bytes(b"slide bytes")
    (media_root / "slides").symlink_to(volume, target_is_directory=True)
    (tmp_path / "datasets-volume").mkdir()
    (tmp_path / "datasets-volume" / "crops.npz").write_bytes(b"crops")
    (media_root / "datasets").symlink_to(tmp_path / "datasets-volume", target_is_directory=True)
    SlideFactory(case=personas["case"], file="slides/ab/slide.tiff")
    out = tmp_path / "night-1"
    call_command("backup", str(out))
    assert {"slides/ab/slide.tiff", "datasets/crops.npz"} <= backed_up(out).keys()
    copy = out / "media" / "slides" / "ab" / "slide.tiff"
    assert not (out / "media" / "slides").is_symlink() and copy.read_bytes() == b"slide bytes"


def test_a_symlink_loop_in_media_root_is_refused_by_name(media_root, tmp_path):
    (media_root / "results").mkdir()
    (media_root / "results" / "again").symlink_to(media_root / "results", target_is_directory=True)
    with pytest.raises(CommandError, match=r"results/again leads back to .*\(a symlink loop\)"):
        call_command("backup", str(tmp_path / "night-1"))
    assert not (tmp_path / "night-1").exists() and not (tmp_path / "night-1.partial").exists()


def test_a_symlink_from_media_root_into_the_backup_storage_is_refused(media_root, tmp_path):
    (tmp_path / "backups").mkdir()
    (media_root / "archive").symlink_to(tmp_path / "backups", target_is_directory=True)
    with pytest.raises(CommandError, match=r"media/archive leads to .*, which holds or is inside the backup folder"):
        call_command("backup", str(tmp_path / "backups" / "night-1"))
    assert list((tmp_path / "backups").iterdir()) == []


def test_a_missing_media_root_is_named(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "not-mounted"
    with pytest.raises(CommandError, match="MEDIA_ROOT .*not-mounted does not exist"):
        call_command("backup", str(tmp_path / "night-1"))
    assert not (tmp_path / "night-1.partial").exists()
