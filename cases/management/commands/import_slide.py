"""python manage.py import_slide PATH [--case ACCESSION] [--mpp X] — prints the slide as JSON."""

import json
from contextlib import nullcontext
from pathlib import Path

from auditlog.context import set_actor
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from cases import services
from cases.choices import Marker
from cases.serializers import SlideSerializer


class Command(BaseCommand):
    help = "Import a slide file (or a folder holding one DICOM series) and print the stored slide as JSON."

    def add_arguments(self, parser):
        parser.add_argument("path", help="Slide file, or a folder with every file of a DICOM series")
        parser.add_argument("--case", help="Accession number of the case the slide belongs to")
        parser.add_argument("--mpp", type=float, help="µm per pixel, for files that do not store it")
        parser.add_argument("--marker", choices=Marker.values,
                            help="what the slide is stained for (default PD-L1 for a new slide; a file already "
                                 "stored keeps its own)")
        parser.add_argument("--user", help="User name recorded as the uploader (and in the audit trail)")

    def handle(self, *args, path, case, mpp, marker, user, **options):
        source = Path(path)
        if not source.exists():
            raise CommandError(f"{path}: no such file or folder")
        if source.is_dir():
            # A DICOMDIR index is not part of the slide: skip it, and hidden files.
            files = sorted(p for p in source.iterdir()
                           if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR")
            if not files:
                raise CommandError(f"{path}: the folder holds no files")
        else:
            files = [source]
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"no user named {user!r}")
        with set_actor(actor) if actor else nullcontext():
            try:
                case_obj = services.check_case_for_user(case, actor) if case else None
                result = services.do_ingest_slide(
                    [services.IngestSource(name=f.name, path=f) for f in files],
                    case=case_obj, uploaded_by=actor, mpp=mpp, marker=marker,
                )
            except services.IngestError as exc:
                raise CommandError(str(exc)) from None
        data = {**SlideSerializer(result.slide).data, "duplicate": result.duplicate, "path": result.slide.path}
        self.stdout.write(json.dumps(data, indent=2, default=str))

