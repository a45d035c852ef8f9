"""python manage.py restore BACKUP — into an empty database and an empty media folder (docs/backup.md)."""

import json
from pathlib import Path

import dj_database_url
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from cases.backup import BackupError, Database, do_restore


class Command(BaseCommand):
    help = ("Restore a backup made by `manage.py backup` into an EMPTY database and an EMPTY media folder "
            "(default: this system's DATABASE_URL and MEDIA_ROOT), then check counts and hashes.")

    def add_arguments(self, parser):
        parser.add_argument("backup", help="Folder written by `manage.py backup`")
        parser.add_argument("--database-url", help="Target database (default: DATABASE_URL); must exist and be empty")
        parser.add_argument("--media-root", help="Target media folder (default: MEDIA_ROOT); must hold no files")

    def handle(self, *args, backup, database_url, media_root, **options):
        if database_url is not None:
            try:
                target = dj_database_url.parse(database_url)
            except ValueError as exc:  # UnknownSchemeError, ParseError: a traceback before, naming no option
                # The URL itself is not repeated: it may hold the database password.
                raise CommandError(f"--database-url is not a database URL ({exc}); "
                                   "e.g. postgres://user:pass@host:5432/pdl1_restored") from None
        try:
            db = Database.from_settings(target if database_url is not None
                                        else connections["default"].settings_dict)
            result = do_restore(Path(backup), db, Path(media_root) if media_root else None)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        manifest = result.manifest
        self.stdout.write(json.dumps({
            "restored": str(result.folder), "database": db.name,
            "media_root": str(media_root or settings.MEDIA_ROOT), "snapshot_at": manifest["snapshot_at"],
            "rows": sum(manifest["row_counts"].values()), "media_files": len(manifest["media"]),
            "verified": "row counts, media sha256, signed report documents",
            "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
        }, indent=2))
