"""python manage.py load_demo — a demo department, users of every role, and a case with real slides.

The case's first slide is real PD-L1 (SP142) IHC (demo/PDL1-SP142-GPEC-demo.tif, GPL-3.0: see
demo/PDL1_DEMO_LICENCE.md), analysed here with the default detector so the first screen shows real
detections; the second is an H&E region kept only to show another format.
Idempotent: running it again changes nothing that exists and never analyses the PD-L1 slide twice.
The demo passwords are printed and are for a local demonstration only.

Because those passwords are published (README.md), it refuses, before writing anything, a database that is
not the embedded demo's own (DATABASE_URL set) unless --not-production says it is a scratch one, and a
demo user name that exists but is not a demo user it made (it would have been given a role and the demo
department).
"""

import datetime
import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from analysis.choices import JobStatus, Marker
from analysis.models import AnalysisJob
from cases import services
from cases.choices import AssayClone, Indication, Role, Sex
from cases.models import Case, Department, Patient, UserProfile
from workers import queue
from workers.services import do_start_job

DEMO_DIR = Path(settings.BASE_DIR) / "demo"
PDL1_SLIDE = DEMO_DIR / "PDL1-SP142-GPEC-demo.tif"
# Not stored by the source images: an estimate (demo/PDL1_DEMO_LICENCE.md); the TIFF carries it too.
PDL1_MPP = 0.65
HE_SLIDE = DEMO_DIR / "CMU-1-Small-Region.svs"
HE_NAME = "CMU-1-Small-Region (H&E, not IHC - for format demonstration only).svs"
DEMO_USERS = [
    # username, role, password
    ("admin", Role.ADMIN, "demo-admin-pass"),
    ("pathologist", Role.PATHOLOGIST, "demo-path-pass"),
    ("annotator", Role.ANNOTATOR, "demo-annot-pass"),
    ("clinician", Role.CLINICIAN, "demo-clin-pass"),
]


# How load_demo names the users it creates (first name: the role's label): a user of a demo user name
# without these names was made by someone else and is never given a demo role or department.
DEMO_LAST_NAME = "Demo"


def is_demo_user(user, role) -> bool:
    return user.first_name == str(role.label) and user.last_name == DEMO_LAST_NAME


def embedded_default_database() -> bool:
    """Whether this is the embedded demo's own database (pdl1site.settings: DATABASE_URL unset). A host
    project's settings do not say: never assumed."""
    try:
        return bool(settings.EMBEDDED_DEFAULT_DATABASE)
    except AttributeError:
        return False


class Command(BaseCommand):
    help = ("Load the demo department, users and a case with a real PD-L1 IHC slide (analysed) and an H&E slide. "
            "The embedded demo's database only (make run), unless --not-production.")

    def add_arguments(self, parser):
        parser.add_argument("--not-production", action="store_true",
                            help="load the demo into this database although DATABASE_URL is set: it is a test or "
                                 "scratch database (the demo users' passwords, admin's included, are published)")

    def handle(self, *args, not_production=False, **options):
        if not (embedded_default_database() or not_production):
            raise CommandError(
                "refused: load_demo creates the superuser admin and other users with published passwords, and this "
                "is not the embedded demo database (DATABASE_URL is set). For a test or scratch database pass "
                "--not-production; nothing was written.")
        taken = [username for username, role, _ in DEMO_USERS
                 for user in get_user_model().objects.filter(username=username) if not is_demo_user(user, role)]
        if taken:
            raise CommandError(f"refused: user(s) {', '.join(taken)} exist and were not made by load_demo; they would "
                               "get a demo role and the demo department. Nothing was written.")
        for path in (PDL1_SLIDE, HE_SLIDE):
            if not path.exists():
                raise CommandError(f"demo slide missing: {path}")
        department, _ = Department.objects.get_or_create(code="pathology", defaults={"name": "Pathology"})
        users = {}
        for username, role, password in DEMO_USERS:
            user, created = get_user_model().objects.get_or_create(
                username=username, defaults={"first_name": str(role.label), "last_name": DEMO_LAST_NAME}
            )
            if created:
                user.set_password(password)
                user.is_staff = user.is_superuser = role == Role.ADMIN
                user.save()
            user.groups.add(Group.objects.get(name=role))
            UserProfile.objects.get_or_create(user=user)[0].departments.add(department)
            users[role] = user
        patient, _ = Patient.objects.get_or_create(
            mrn="DEMO-0001",
            defaults=dict(family_name="Demo", given_name="Patient", birth_date=datetime.date(1958, 3, 14),
                          sex=Sex.FEMALE, department=department),
        )
        patient.clinicians.add(users[Role.CLINICIAN])
        case, _ = Case.objects.get_or_create(
            accession="DEMO-2026-0001",
            defaults=dict(patient=patient, department=department, indication=Indication.BREAST_DUCTAL,
                          assay_clone=AssayClone.SP142,
                          specimen="Demo: five breast TMA cores, PD-L1 SP142 IHC (GPEC); "
                                   "second slide H&E for format demonstration only",
                          created_by=users[Role.PATHOLOGIST]),
        )
        case.assigned_to.add(users[Role.PATHOLOGIST])
        pathologist = users[Role.PATHOLOGIST]
        # Run again (every `make run`): the demo slide keeps a resolution a user has set on it since.
        has_mpp = case.slides.filter(original_name=PDL1_SLIDE.name, mpp_x__isnull=False).exists()
        pdl1 = services.do_ingest_slide([services.IngestSource(name=PDL1_SLIDE.name, path=PDL1_SLIDE)],
                                        case=case, uploaded_by=pathologist, mpp=None if has_mpp else PDL1_MPP,
                                        marker=Marker.PDL1)
        he = services.do_ingest_slide([services.IngestSource(name=HE_NAME, path=HE_SLIDE)],
                                      case=case, uploaded_by=pathologist, marker=Marker.HE)
        job = analyse_once(pdl1.slide, pathologist)
        self.stdout.write(json.dumps({"case": case.accession, "slide": pdl1.slide.pk,
                                      "slide_created": pdl1.created, "he_slide": he.slide.pk,
                                      "analysis": {"job": job.pk, "status": job.status,
                                                   "counts": (job.summary or {}).get("counts")},
                                      "logins": {u: p for u, _, p in DEMO_USERS}}, indent=2))


def analyse_once(slide, user) -> AnalysisJob:
    """The slide's finished analysis, else one run now with the default detector.

    It runs here, in-process, through the very stages the worker runs (as analyze_slide does), so
    the first screen after `make run` already shows detections (the worker starts only after
    load_demo); an earlier run that failed or was interrupted is run again.
    """
    existing = slide.analysis_jobs.filter(status=JobStatus.DONE).order_by("-pk").first()
    if existing is not None:
        return existing
    with queue.collecting() as pending:
        job = do_start_job(slide, user=user)
        while pending:  # split queues the detect batches, the last batch queues the merge
            func, task_args = pending.pop(0)
            queue.run(func, task_args)
    job.refresh_from_db()
    return job
