"""Backup and restore reach the database as the platform does (docs/backup.md, Database options).

DATABASES OPTIONS (DATABASE_URL's `?options=-c search_path=...`, `sslmode`, `sslrootcert`, ...) were
dropped: a search path crashed the backup and TLS settings fell back to libpq's defaults unnoticed.
A file system or SQLite error was a traceback where the docs promise a one-line message.
"""

import dj_database_url
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from cases import backup
from cases.backup import BackupError, Database

URL = ("postgres://app:secret@db.hospital.example:5432/pdl1?options=-c%20search_path%3Dpdl1"
       "&sslmode=verify-full&sslrootcert=/etc/pdl1/ca.pem&sslcert=/etc/pdl1/client.crt&sslkey=/etc/pdl1/client.key")
POSTGRES = connection.vendor == "postgresql"


def test_options_reach_pg_dump_and_pg_restore_as_libpq_variables():
    env = Database.from_settings(dj_database_url.parse(URL)).env()
    assert env["PGOPTIONS"] == "-c search_path=pdl1"
    assert env["PGSSLMODE"] == "verify-full" and env["PGSSLROOTCERT"] == "/etc/pdl1/ca.pem"
    assert env["PGSSLCERT"] == "/etc/pdl1/client.crt" and env["PGSSLKEY"] == "/etc/pdl1/client.key"
    assert env["PGHOST"] == "db.hospital.example" and env["PGDATABASE"] == "pdl1"


def test_options_reach_the_connection_that_counts_rows_and_names_files(monkeypatch):
    import psycopg

    seen = {}
    monkeypatch.setattr(psycopg, "connect", lambda **kwargs: seen.update(kwargs))
    settings = dj_database_url.parse(URL)
    settings["OPTIONS"].update({"keepalives_idle": 30, "isolation_level": 1})  # TCP tuning; Django's own
    Database.from_settings(settings).connect()
    assert seen["options"] == "-c search_path=pdl1" and seen["sslmode"] == "verify-full"
    assert seen["sslrootcert"] == "/etc/pdl1/ca.pem" and seen["keepalives_idle"] == 30
    assert "isolation_level" not in seen


def test_assume_role_is_taken_by_the_tools_too():
    settings = dj_database_url.parse(URL)
    settings["OPTIONS"]["assume_role"] = "pdl1_owner"
    db = Database.from_settings(settings)
    assert db.tool_arguments() == ["--role=pdl1_owner"] and "assume_role" not in db.options


def test_an_option_the_tools_cannot_be_given_is_refused_by_name():
    settings = dj_database_url.parse(URL)
    settings["OPTIONS"]["sslpassword"] = "key-passphrase"
    with pytest.raises(BackupError, match="DATABASES OPTIONS sslpassword: pg_dump and pg_restore cannot"):
        Database.from_settings(settings)


@pytest.mark.django_db
def test_a_postgresql_connection_takes_the_options():
    if not POSTGRES:
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    source = Database.from_settings(connection.settings_dict)
    db = Database(**{**source.__dict__, "options": {"options": "-c search_path=pdl1_nowhere,public",
                                                    "application_name": "pdl1-backup-test"}})
    with db.connect() as conn:
        assert conn.execute("SHOW search_path").fetchone()[0] == "pdl1_nowhere,public"
        assert conn.execute("SHOW application_name").fetchone()[0] == "pdl1-backup-test"


@pytest.mark.django_db
def test_a_file_system_error_is_a_one_line_command_error(media_root, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(CommandError, match="^backup failed: .*a-file"):
        call_command("backup", str(tmp_path / "a-file" / "night-1"))


def test_a_restore_error_of_the_file_system_is_a_backup_error(tmp_path, monkeypatch):
    def unreadable(folder):
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(backup, "read_manifest", unreadable)
    with pytest.raises(BackupError, match="^restore failed: .*Permission denied"):
        backup.do_restore(tmp_path, Database(engine="sqlite", name=str(tmp_path / "t.sqlite3")), tmp_path / "m")
