"""Two backups to the same OUT (cron and a manual run): the second deleted the first one's
OUT.partial as an interrupted backup's. Now the first holds OUT.lock and the second refuses."""

import fcntl
import os

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_backup_to_the_same_folder_refuses_while_the_first_holds_the_lock(media_root, tmp_path):
    out = tmp_path / "night-1"
    partial = tmp_path / "night-1.partial"
    partial.mkdir()
    (partial / "database.sqlite3").write_bytes(b"the first backup is writing this")
    fd = os.open(tmp_path / "night-1.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what the first backup holds while it runs
        with pytest.raises(CommandError, match=r"another backup is writing .*night-1 now \(it holds .*night-1\.lock\)"):
            call_command("backup", str(out))
    finally:
        os.close(fd)
    assert (partial / "database.sqlite3").read_bytes() == b"the first backup is writing this"
    assert not out.exists()


def test_a_lock_file_nobody_holds_does_not_stop_a_backup_and_is_removed(media_root, tmp_path):
    (tmp_path / "night-1.lock").write_text("")  # left by a backup that was killed
    (tmp_path / "night-1.partial").mkdir()  # and its half-written folder
    call_command("backup", str(tmp_path / "night-1"))
    assert (tmp_path / "night-1" / "manifest.json").is_file()
    assert not (tmp_path / "night-1.lock").exists() and not (tmp_path / "night-1.partial").exists()
