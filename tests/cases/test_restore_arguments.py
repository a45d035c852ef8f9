"""`manage.py restore --database-url` that is not a database URL: a one-line CommandError naming the
option, before anything is read or written (it was dj_database_url's UnknownSchemeError traceback)."""

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize("url", ["garbage", "", "nonsense://db.internal/pdl1", "postgres://u:secret@db:port/pdl1"])
def test_a_database_url_that_is_no_url_is_a_command_error_and_nothing_is_written(tmp_path, url):
    backup = tmp_path / "backup"
    backup.mkdir()
    restored_media = tmp_path / "restored-media"
    with pytest.raises(CommandError, match=r"^--database-url is not a database URL \(") as refused:
        call_command("restore", str(backup), "--database-url", url, "--media-root", str(restored_media))
    assert "secret" not in str(refused.value)  # a password in the URL is never echoed
    assert not restored_media.exists() and list(backup.iterdir()) == []
