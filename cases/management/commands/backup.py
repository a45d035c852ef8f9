"""python manage.py backup OUT — a consistent backup of the live database and media folder (docs/backup.md)."""

import json

from django.core.management.base import BaseCommand, CommandError

from cases.backup import BackupError, do_backup


class Command(BaseCommand):
    help = ("Back up the database (pg_dump snapshot, or SQLite's backup API) and then MEDIA_ROOT into the new "
            "folder OUT, with a manifest of row counts and sha256 of every file. Safe on a running system.")

    def add_arguments(self, parser):
        parser.add_argument("out", help="New folder for this backup (must not exist)")
        parser.add_argument("--previous", help="An earlier backup on the same file system: unchanged media files "
                                               "are hard-linked from it instead of copied (its copy's size checked)")
        parser.add_argument("--verify-previous", action="store_true",
                            help="also check the sha256 of every earlier copy before linking it (reads that backup "
                                 "whole: weekly, say); a damaged copy is copied afresh from the live file")

    def handle(self, *args, out, previous, verify_previous=False, **options):
        try:
            result = do_backup(out, previous=previous, verify_previous=verify_previous)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        manifest = result.manifest
        self.stdout.write(json.dumps({
            "backup": str(result.folder), "engine": manifest["engine"], "snapshot_at": manifest["snapshot_at"],
            "media_copied_at": manifest["media_copied_at"], "rows": sum(manifest["row_counts"].values()),
            "tables": len(manifest["row_counts"]), "media_files": len(manifest["media"]),
            "media_bytes": sum(f["size"] for f in manifest["media"].values()),
            "database_bytes": manifest["database"]["size"], "seconds": manifest["seconds"],
        }, indent=2))
