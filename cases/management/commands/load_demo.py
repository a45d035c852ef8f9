"""python manage.py load_demo — a demo department, users of every role, and a case with a real slide.

Idempotent: running it again changes nothing that exists. The demo passwords are printed and
are for a local demonstration only.
"""

import datetime
import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from cases import services
from cases.choices import AssayClone, Indication, Role, Sex
from cases.models import Case, Department, Patient, UserProfile

DEMO_SLIDE = Path(settings.BASE_DIR) / "demo" / "CMU-1-Small-Region.svs"
DEMO_USERS = [
    # username, role, password
    ("admin", Role.ADMIN, "demo-admin-pass"),
    ("pathologist", Role.PATHOLOGIST, "demo-path-pass"),
    ("annotator", Role.ANNOTATOR, "demo-annot-pass"),
    ("clinician", Role.CLINICIAN, "demo-clin-pass"),
]


class Command(BaseCommand):
    help = "Load the demo department, users and a case with the CMU-1-Small-Region slide."

    def handle(self, *args, **options):
        if not DEMO_SLIDE.exists():
            raise CommandError(f"demo slide missing: {DEMO_SLIDE}")
        department, _ = Department.objects.get_or_create(code="pathology", defaults={"name": "Pathology"})
        users = {}
        for username, role, password in DEMO_USERS:
            user, created = get_user_model().objects.get_or_create(
                username=username, defaults={"first_name": role.label, "last_name": "Demo"}
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
            defaults=dict(patient=patient, department=department, indication=Indication.LUNG_SQUAMOUS,
                          assay_clone=AssayClone.C22C3, specimen="Demo slide CMU-1 region (H&E, stands in for IHC)",
                          created_by=users[Role.PATHOLOGIST]),
        )
        case.assigned_to.add(users[Role.PATHOLOGIST])
        result = services.do_ingest_slide(
            [services.IngestSource(name=DEMO_SLIDE.name, path=DEMO_SLIDE)],
            case=case, uploaded_by=users[Role.PATHOLOGIST],
        )
        self.stdout.write(json.dumps({"case": case.accession, "slide": result.slide.pk,
                                      "slide_created": result.created,
                                      "logins": {u: p for u, _, p in DEMO_USERS}}, indent=2))
