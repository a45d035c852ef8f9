"""docs/backup.md's PostgreSQL restore steps: the database is created by `postgres` for the platform's
user. From PostgreSQL 15 on only the database's owner may create tables in its public schema, so
`createdb` without `-O USER` made every restore fail with "permission denied for schema public"."""

import pytest
from django.core.management import call_command
from django.db import connection

from cases import backup
from cases.backup import BackupError, Database

pytestmark = pytest.mark.django_db(transaction=True)
ROLE = "pdl1_test_restorer"


@pytest.fixture
def as_platform_user():
    """A database created by the superuser, and a login role that is not its owner (the platform's)."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL restore: runs when DATABASE_URL points at PostgreSQL")
    source = Database.from_settings(connection.settings_dict)
    admin = Database(**{**source.__dict__, "name": "postgres"})
    target = f"{source.name}_owner"
    with admin.connect() as conn:
        conn.autocommit = True
        conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD 'restorer-pw'")
        conn.execute(f'CREATE DATABASE "{target}"')  # what `createdb -U postgres NAME` does
    yield admin, Database(**{**source.__dict__, "name": target, "user": ROLE, "password": "restorer-pw"})
    with admin.connect() as conn:
        conn.autocommit = True
        conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")


def test_restoring_as_a_user_who_does_not_own_the_database_says_to_create_it_with_owner(
        as_platform_user, media_root, tmp_path):
    admin, target = as_platform_user
    out = tmp_path / "night-1"
    call_command("backup", str(out))
    refused = rf"permission denied for schema public: .* createdb -O {ROLE} {target.name} and restore again"
    with pytest.raises(BackupError, match=refused):
        backup.do_restore(out, target, tmp_path / "restored-media")
    # The documented steps: the database owned by the user restoring (here changed after createdb).
    with admin.connect() as conn:
        conn.autocommit = True
        conn.execute(f'ALTER DATABASE "{target.name}" OWNER TO {ROLE}')
    backup.do_restore(out, target, tmp_path / "restored-media")
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 0
