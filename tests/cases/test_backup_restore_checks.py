"""What `manage.py restore` refuses before it changes anything (docs/backup.md, Restoring).

A leftover SQLite write-ahead log or journal beside the target was replayed into the restored
database; manifest paths with `..` or an absolute path read and wrote outside the media folders; a
backup of a newer platform was refused only after every byte had been hashed.
"""

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from cases import backup

pytestmark = pytest.mark.django_db(transaction=True)
SQLITE = connection.vendor == "sqlite"


@pytest.fixture
def small_backup(media_root, tmp_path) -> Path:
    """A backup of the test database and one media file."""
    (media_root / "results" / "job-1").mkdir(parents=True)
    (media_root / "results" / "job-1" / "detections.store").write_bytes(b"detections")
    out = tmp_path / "backups" / "night-1"
    call_command("backup", str(out))
    return out


def edit_manifest(folder: Path, change) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def media_entry(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mtime_ns": 0}


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_leftover_sqlite_log_beside_the_target_is_refused_and_nothing_changes(small_backup, tmp_path, suffix):
    if not SQLITE:
        pytest.skip("the restore target is an SQLite file only in the embedded mode")
    target = tmp_path / "restored" / "db.sqlite3"
    target.parent.mkdir()
    leftover = Path(f"{target}{suffix}")
    leftover.write_bytes(b"what a crashed server left")
    restored_media = tmp_path / "restored-media"
    with pytest.raises(CommandError, match=rf"db\.sqlite3{suffix} beside the target database: SQLite would replay"):
        call_command("restore", str(small_backup), database_url=f"sqlite:///{target}", media_root=str(restored_media))
    assert not target.exists() and not restored_media.exists()
    assert leftover.read_bytes() == b"what a crashed server left"


def test_a_target_file_that_is_no_sqlite_database_is_a_one_line_refusal(small_backup, tmp_path):
    if not SQLITE:
        pytest.skip("the restore target is an SQLite file only in the embedded mode")
    target = tmp_path / "notdb.sqlite3"
    target.write_bytes(b"this is not an SQLite database, just some bytes " * 100)
    with pytest.raises(CommandError, match="cannot be read as SQLite"):
        call_command("restore", str(small_backup), database_url=f"sqlite:///{target}",
                     media_root=str(tmp_path / "restored-media"))
    assert not (tmp_path / "restored-media").exists()


def test_a_manifest_path_with_dotdot_is_refused_before_anything_is_written(small_backup, tmp_path):
    data = b"written outside MEDIA_ROOT"
    (small_backup / "escaped.txt").write_bytes(data)
    edit_manifest(small_backup, lambda m: m["media"].update({"../escaped.txt": media_entry(data)}))
    restored = tmp_path / "target"
    with pytest.raises(CommandError, match="'../escaped.txt', which leads outside"):
        call_command("restore", str(small_backup), database_url=f"sqlite:///{restored}/db.sqlite3",
                     media_root=str(restored / "media"))
    assert not restored.exists()


def test_an_absolute_manifest_path_is_refused_and_the_file_it_names_is_untouched(small_backup, tmp_path):
    victim = tmp_path / "elsewhere" / "precious.svs"
    victim.parent.mkdir()
    victim.write_bytes(b"a slide on another volume")
    edit_manifest(small_backup, lambda m: m["media"].update({str(victim): media_entry(victim.read_bytes())}))
    with pytest.raises(CommandError, match="which leads outside"):
        call_command("restore", str(small_backup), database_url=f"sqlite:///{tmp_path}/t/db.sqlite3",
                     media_root=str(tmp_path / "restored-media"))
    assert victim.read_bytes() == b"a slide on another volume"
    assert not (tmp_path / "restored-media").exists()


def test_a_symlink_inside_the_backup_is_refused(small_backup, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "detections.store").write_bytes(b"detections")  # same bytes and hash as the copy it replaces
    job = small_backup / "media" / "results" / "job-1"
    (job / "detections.store").unlink()
    job.rmdir()
    job.symlink_to(outside, target_is_directory=True)
    with pytest.raises(CommandError, match="or through a symlink"):
        call_command("restore", str(small_backup), database_url=f"sqlite:///{tmp_path}/t/db.sqlite3",
                     media_root=str(tmp_path / "restored-media"))
    assert not (tmp_path / "restored-media").exists()


def test_a_backup_of_a_newer_platform_is_refused_before_its_bytes_are_hashed(small_backup, tmp_path, monkeypatch):
    edit_manifest(small_backup, lambda m: m["migrations"].append(["cases", "9999_from_the_future"]))

    def no_hashing(path):
        raise AssertionError(f"{path} was hashed before the migrations were checked")

    monkeypatch.setattr(backup, "sha256_file", no_hashing)
    with pytest.raises(CommandError, match="migrations this code does not: cases.9999_from_the_future"):
        call_command("restore", str(small_backup), database_url=f"sqlite:///{tmp_path}/t/db.sqlite3",
                     media_root=str(tmp_path / "restored-media"))
