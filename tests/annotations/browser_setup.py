"""Setup of the annotation browser tests' live site (runs in the site's environment, Django set up).

    python -c "import django; django.setup(); from tests.annotations.browser_setup import main; main()" setup TMPDIR
"""

import json
import sys
from pathlib import Path

REPLY = "SETUP "
# Username order gives annot2 the circle, annotator the square.  They agree on one nucleus (600, 600);
# the other points lie far apart, so that each marker is drawn alone.
REVIEW_POINTS = {"annotator": [[400, 400, "positive"], [600, 600, "negative"]],
                 "annot2": [[500, 400, "positive"], [601, 600, "negative"], [700, 700, "negative"]]}


def _setup(tmp: Path) -> dict:
    from analysis.synthetic_slide import write_pyramidal_tiff
    from annotations import services
    from cases.choices import Role
    from cases.services import IngestSource, do_ingest_slide
    from tests.factories import CaseFactory, DepartmentFactory, make_user

    dept = DepartmentFactory(code="dept-a")
    pathologist = make_user(Role.PATHOLOGIST, [dept], username="pathologist")
    annotator = make_user(Role.ANNOTATOR, [dept], username="annotator")
    case = CaseFactory(patient__department=dept, accession="S26-SECRET-ACC")
    name = "SYNTHETIC-annotate.tiff"
    tiff = write_pyramidal_tiff(tmp / name, size=(1024, 1024), mpp=0.5, seed=5, tile=256, compression="zlib")
    slide = do_ingest_slide([IngestSource(name=name, path=Path(tiff.path))], case=case).slide
    # One project per session: a project's fields on one slide may not overlap, and every test wants this region.
    fields = {key: services.do_create_field(
        services.do_create_project(pathologist, f"browser batch {key}", "lung_squamous", "PD-L1", (), [annotator]),
        slide, 256, 256, 512, 512, user=pathologist)
        for key in ("edit", "conflict", "many", "submit", "import", "leave", "stale_submit", "close",
                    "pixel", "pixel_rotated", "pixel_edge", "keys", "lost", "lost_other", "drag", "hidden", "big_leave")}
    sessions = {key: f.sessions.get(annotator=annotator).pk for key, f in fields.items()}
    # A field that two annotators have submitted, for the reviewer's page.
    second = make_user(Role.ANNOTATOR, [dept], username="annot2")
    review_project = services.do_create_project(pathologist, "review batch", "lung_squamous", "PD-L1", (),
                                                [annotator, second])
    review_field = services.do_create_field(review_project, slide, 256, 256, 512, 512, user=pathologist)
    review = {}
    for user, points in ((annotator, REVIEW_POINTS["annotator"]), (second, REVIEW_POINTS["annot2"])):
        session = review_field.sessions.get(annotator=user)
        services.do_save_points(session, user, 0, points)
        services.do_submit(session, user)
        review[user.username] = session.pk
    # A project to draw a field in: two annotators, and one field already there (an outline on the draw page).
    draw_project = services.do_create_project(pathologist, "draw batch", "lung_squamous", "PD-L1", (),
                                              [annotator, second])
    existing = services.do_create_field(draw_project, slide, 600, 600, 256, 256, user=pathologist)
    patient = case.patient
    secrets = [s for s in (case.accession, patient.mrn, patient.family_name, patient.given_name, name) if len(s) > 3]
    return {"sessions": sessions, "pseudo_id": str(slide.pseudo_id), "slide": slide.pk, "secrets": secrets,
            "review_field": review_field.pk, "review_sessions": review, "review_points": REVIEW_POINTS,
            "draw_project": draw_project.pk, "draw_existing": existing.pk}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "setup":
        sys.stdout.write(REPLY + json.dumps(_setup(Path(sys.argv[2]))) + "\n")
        sys.stdout.flush()
    else:
        sys.exit("usage: setup TMPDIR")
