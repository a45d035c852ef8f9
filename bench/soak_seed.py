"""The soak's data (bench/soak.py), made once in the platform's own environment before any load:

    python bench/soak_seed.py OUT_DIR N_UPLOADS      (DJANGO_SETTINGS_MODULE=pdl1site.settings)

`load_demo` (the demo department, the real PD-L1 slide and its fault-free reference analysis, run
in-process through the same stages as the workers), then the soak's users (viewer accounts,
pathologists, annotators; password SOAK_PASSWORD), an annotation project with one field per
annotator, a training project with one accepted field, and N_UPLOADS small SYNTHETIC slides to
upload during the run. Prints one JSON line prefixed SEED.
"""

from __future__ import annotations

import io
import json
import os
import sys
from contextlib import redirect_stdout
from pathlib import Path

SOAK_PASSWORD = "soak-pass-2026"
VIEWER_ACCOUNTS = 10
ANNOTATORS = 5
PATHOLOGISTS = 2


def seed(out_dir: Path, n_uploads: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from analysis.choices import JobStatus
    from analysis.models import AnalysisJob
    from analysis.synthetic_slide import write_pyramidal_tiff
    from annotations import services as annotations
    from cases.choices import Role
    from cases.models import Case, Department, UserProfile

    with redirect_stdout(io.StringIO()):
        call_command("load_demo", "--not-production")  # a scratch soak database, never production
    department = Department.objects.get(code="pathology")
    case = Case.objects.get(accession="DEMO-2026-0001")
    reference = AnalysisJob.objects.filter(status=JobStatus.DONE).order_by("pk").first()
    slide = reference.slide

    def user(name, role):
        u, _ = get_user_model().objects.get_or_create(username=name, defaults={"first_name": name})
        u.set_password(SOAK_PASSWORD)
        u.save()
        u.groups.add(Group.objects.get(name=role))
        UserProfile.objects.get_or_create(user=u)[0].departments.add(department)
        return u

    # Uploads go to a case of their own: the demo case gets signed reports during the soak, and a case
    # with a signed report refuses new slides (they would not be part of the report).
    uploads_case, _ = Case.objects.get_or_create(
        accession="SOAK-UPLOADS", defaults=dict(patient=case.patient, department=department, indication=case.indication,
                                                assay_clone=case.assay_clone, specimen="soak uploads (SYNTHETIC slides)"))
    viewers = [user(f"soak-viewer-{i:02d}", Role.PATHOLOGIST).username for i in range(VIEWER_ACCOUNTS)]
    pathologists = [user(f"soak-path-{i}", Role.PATHOLOGIST) for i in range(PATHOLOGISTS)]
    for p in pathologists:
        case.assigned_to.add(p)
    annotators = [user(f"soak-annot-{i}", Role.ANNOTATOR) for i in range(ANNOTATORS)]

    # One field per annotator (each also gets sessions on the others' fields; it edits its own).
    project = annotations.do_create_project(pathologists[0], "Soak annotation", case.indication, slide.marker,
                                            annotators=annotators)
    sessions = {}
    for i, a in enumerate(annotators):
        field = annotations.do_create_field(project, slide, 400 + 800 * i, 600, 512, 512, pathologists[0])
        sessions[a.username] = {"session": field.sessions.get(annotator=a).pk,
                                "field": [field.x, field.y, field.width, field.height]}

    # Training needs an accepted field: the reference detections inside one field, accepted.
    training = annotations.do_create_project(pathologists[0], "Soak training", case.indication, slide.marker,
                                             annotators=[annotators[0]])
    field = annotations.do_create_field(training, slide, 1500, 1000, 768, 768, pathologists[0])
    session = field.sessions.get()
    from django.conf import settings

    from analysis.detection_store import open_store

    store = open_store(Path(settings.MEDIA_ROOT) / reference.result_file)
    found = store.query(field.x, field.y, field.x + field.width, field.y + field.height)
    names = {1: "positive", 2: "negative"}
    points = [(float(x), float(y), names[int(label)]) for (x, y), label in zip(found.xy, found.labels)
              if int(label) in names]
    session = annotations.do_save_points(session, annotators[0], session.version, points)
    annotations.do_submit(session, annotators[0])
    annotations.do_accept(session, pathologists[0])

    uploads = []
    folder = out_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_uploads):
        made = write_pyramidal_tiff(folder / f"SYNTHETIC-soak-upload-{i:03d}.tiff", size=(768, 768), mpp=0.5,
                                    seed=1000 + i, tile=256, compression="zlib")
        uploads.append(str(made.path))

    return {
        "case": case.pk, "uploads_case": uploads_case.accession, "slide": slide.pk, "slide_size": [slide.width, slide.height],
        "reference_job": reference.pk, "reference_summary": reference.summary,
        "viewers": viewers, "pathologists": [p.username for p in pathologists],
        "annotators": [a.username for a in annotators], "sessions": sessions,
        "reference_detections": len(store), "training_project": training.pk, "training_points": len(points),
        "uploads": uploads, "password": SOAK_PASSWORD,
    }


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())  # the source tree under test (the checkout, or a snapshot of it)
    import django

    django.setup()
    result = seed(Path(sys.argv[1]), int(sys.argv[2]))
    print("SEED " + json.dumps(result), flush=True)
