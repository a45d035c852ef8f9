"""Re-running the analysis keeps the pathologist's work (issue 18 item 5): regions belong to the
slide; corrections carry over to the new run, matched by position within 4 µm, and what could not be
carried is listed in the API with a message for the viewer; signed reports keep their documents."""

import numpy as np
import pytest
from django.conf import settings

from analysis.detection_store import write_store
from tests.viewer import DoneJobFactory, SlideFactory, client_for
from viewer import carry
from viewer.models import Correction, CorrectionSet, Region
from viewer.overlay import CorrectionState

pytestmark = pytest.mark.django_db

# The first run's detections (level-0 px, 0.5 µm/px: 4 µm is 8 px).
FIRST = np.array([[100, 100], [200, 100], [300, 100], [400, 100], [500, 100], [600, 600]], np.float32)
FIRST_LABELS = np.array([1, 2, 1, 2, 1, 2], np.int8)


def store_job(slide, xy, labels, name):
    relative = f"jobs/{name}-{slide.pk}/detections.store"
    write_store(settings.MEDIA_ROOT / relative, np.asarray(xy, np.float32), np.asarray(labels, np.int8),
                np.linspace(0.9, 0.5, len(labels)).astype(np.float32), width=slide.width, height=slide.height,
                mpp=0.5)
    return DoneJobFactory(slide=slide, result_file=relative)


def post(client, job, tail, **data):
    r = client.post(f"/api/viewer/jobs/{job.pk}/{tail}/", data, content_type="application/json")
    assert r.status_code == 201, r.content
    return r.json()


def test_plan_carry_matches_by_position_and_lists_what_it_cannot():
    old_state = CorrectionState(deleted={0, 5}, relabelled={1: 1, 2: 2}, added={7: [700.0, 100.0, 1],
                                                                           8: [800.0, 100.0, 2]})
    old_xy = {0: (100.0, 100.0), 1: (200.0, 100.0), 2: (300.0, 100.0), 5: (600.0, 600.0)}
    # The new run: every old point 3 px off, the one at (600, 600) gone, a cell found at 802 (added as
    # negative, found positive), the reclassified (300, 100) already negative in the new run.
    new_xy = [[103, 100], [203, 100], [303, 100], [403, 100], [503, 100], [802, 101]]
    new_labels = [1, 2, 2, 2, 1, 1]
    plan = carry.plan_carry(old_xy, old_state, {}, new_xy, new_labels, radius_px=8.0)
    ops = [{k: v for k, v in op.items() if k != "source"} for op in plan.ops]
    assert ops == [{"op": "delete", "detection": 0},
                   {"op": "reclassify", "detection": 1, "label": 1},
                   {"op": "add", "x": 700.0, "y": 100.0, "label": 1},
                   {"op": "reclassify", "detection": 5, "label": 2}]
    assert plan.already == 1
    assert plan.missed == [{"correction": None, "op": "delete", "x": 600.0, "y": 600.0, "label": None,
                            "reason": "no detection of the new run within 4 µm"}]


def test_a_rerun_keeps_regions_and_carries_corrections(personas, media_root, django_capture_on_commit_callbacks):
    slide = SlideFactory(case=personas["case"], width=1000, height=1000)
    first = store_job(slide, FIRST, FIRST_LABELS, "first")
    client = client_for(personas["pathologist"])
    post(client, first, "corrections", base_version=0, op="delete", detection=0)
    post(client, first, "corrections", base_version=1, op="reclassify", detection=1, label="positive")
    post(client, first, "corrections", base_version=2, op="delete", detection=5)
    post(client, first, "corrections", base_version=3, op="add", x=700, y=100, label="negative")
    post(client, first, "regions", base_version=4, kind="tumour", vertices=[[0, 0], [1000, 0], [1000, 300], [0, 300]])
    before = client.get(f"/api/viewer/jobs/{first.pk}/corrections/").json()["scores"]["counts"]

    # The re-run finds the same cells 2 px off, except the one at (600, 600); it is saved as done.
    moved = FIRST[:5] + [2, 0]
    with django_capture_on_commit_callbacks(execute=True):
        second = store_job(slide, moved, FIRST_LABELS[:5], "second")
    body = client.get(f"/api/viewer/jobs/{second.pk}/corrections/").json()
    report = body["carry_over"]
    assert report["from_job"] == first.pk and report["carried"] == 3 and report["saved"] == 3
    assert report["not_carried"] == [{"correction": Correction.objects.get(job=first, version=3).pk, "op": "delete",
                                      "x": 600.0, "y": 600.0, "label": None,
                                      "reason": "no detection of the new run within 4 µm"}]
    assert report["message"] == (
        f"3 corrections of the earlier analysis (job {first.pk}) carried over to this one; 1 not carried (no "
        "detection of this analysis within 4 µm of where they were made), check these places and correct them "
        "again if needed: delete at (600, 600).")
    carried = Correction.objects.filter(job=second).order_by("version")
    assert [(c.op, c.detection, c.carried_from.job_id, c.author.username) for c in carried] == [
        ("delete", 0, first.pk, "pathologist"), ("reclassify", 1, first.pk, "pathologist"),
        ("add", None, first.pk, "pathologist")]
    # The region drawn on the first run counts on the second: (600, 600) was outside it anyway.
    regions = client.get(f"/api/viewer/jobs/{second.pk}/regions/").json()
    assert [r["drawn_on"] for r in regions["items"]] == [first.pk]
    assert body["scores"]["counts"] == before == {"positive": 3, "negative": 2, "other": 0}
    assert body["version"] == 4 and CorrectionSet.objects.get(job=second).carried_from == first
    # Saving the job again carries nothing twice.
    with django_capture_on_commit_callbacks(execute=True):
        second.save()
    assert Correction.objects.filter(job=second).count() == 3


def test_a_first_run_has_nothing_to_carry(personas, media_root, django_capture_on_commit_callbacks):
    slide = SlideFactory(case=personas["case"], width=1000, height=1000)
    with django_capture_on_commit_callbacks(execute=True):
        job = store_job(slide, FIRST, FIRST_LABELS, "only")
    assert client_for(personas["pathologist"]).get(f"/api/viewer/jobs/{job.pk}/corrections/").json()["carry_over"] is None


def test_signed_documents_survive_a_rerun(personas, media_root, django_capture_on_commit_callbacks):
    from cases.documents import stored_documents
    from cases.reports import do_create_draft, do_sign

    slide = SlideFactory(case=personas["case"], width=1000, height=1000)
    first = store_job(slide, np.tile(FIRST, (20, 1)) + np.repeat(np.arange(20), 6)[:, None] * [0, 10],
                      np.tile(FIRST_LABELS, 20), "signed")
    pathologist = personas["pathologist"]
    report = do_sign(do_create_draft(personas["case"], first, pathologist, comment="signed"), pathologist,
                     "pw-for-tests-123")
    signed = {kind: (doc.sha256, bytes(doc.content)) for kind, doc in stored_documents(report).items()}
    assert len(signed) == 2  # the PDF and the FHIR record
    client = client_for(pathologist)
    post(client, first, "regions", base_version=0, kind="necrosis", vertices=[[0, 0], [1000, 0], [1000, 150]])
    with django_capture_on_commit_callbacks(execute=True):
        store_job(slide, FIRST, FIRST_LABELS, "rerun")
    report.refresh_from_db()
    assert {kind: (doc.sha256, bytes(doc.content)) for kind, doc in stored_documents(report).items()} == signed
    assert Region.objects.get().slide == slide


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_every_region_its_jobs_slide(personas, media_root):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    slide = SlideFactory(case=personas["case"])
    job = DoneJobFactory(slide=slide)
    executor = MigrationExecutor(connection)
    executor.migrate([("viewer", "0002_regions")])
    old = executor.loader.project_state([("viewer", "0002_regions")]).apps
    region = old.get_model("viewer", "Region").objects.create(
        job_id=job.pk, kind="tumour", vertices=[[0, 0], [10, 0], [10, 10]], version=1, author_id=personas["pathologist"].pk)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    migrated = Region.objects.get(pk=region.pk)
    assert migrated.slide_id == slide.pk and migrated.drawn_on_id == job.pk


def test_a_rerun_after_regions_only_is_corrected_as_its_scores_are(personas, media_root,
                                                                     django_capture_on_commit_callbacks):
    """Regions drawn, no point corrected: the re-run's scores count inside the regions, so its version says
    "corrected" (the case page's TPS and the PDF's "includes pathologist corrections" read it)."""
    from cases.services import slide_overview
    from viewer.human_layer import correction_version
    from viewer.scores import job_scores

    slide = SlideFactory(case=personas["case"], width=1000, height=1000)
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1000, (2000, 2)).astype(np.float32)
    labels = np.where(xy[:, 0] < 500, 1, 2).astype(np.int8)  # left half positive
    first = store_job(slide, xy, labels, "first")
    post(client_for(personas["pathologist"]), first, "regions", base_version=0, kind="tumour",
         vertices=[[0, 0], [400, 0], [400, 1000], [0, 1000]])
    with django_capture_on_commit_callbacks(execute=True):
        second = store_job(slide, xy + 1, labels, "second")
    assert correction_version(second) > 0 and job_scores(second)["tps"] == 100.0
    (row,) = slide_overview([slide])
    assert row["done"] == second and row["corrected"] and row["tps"] == 100.0


def test_a_saved_rerun_never_carries_corrections_made_since_on_top_of_its_own(personas, media_root,
                                                                             django_capture_on_commit_callbacks):
    slide = SlideFactory(case=personas["case"], width=1000, height=1000)
    xy = np.array([[100, 100], [300, 300], [500, 500]], np.float32)
    first = store_job(slide, xy, [1, 2, 2], "first")
    with django_capture_on_commit_callbacks(execute=True):
        second = store_job(slide, xy, [1, 2, 2], "second")  # nothing to carry yet
    assert carry.do_carry_over(second) is None
    post(client_for(personas["pathologist"]), first, "corrections", base_version=0, op="add", x=800, y=800,
         label="positive")  # the earlier run corrected afterwards
    with django_capture_on_commit_callbacks(execute=True):
        second.save()  # any later save of the done re-run
    assert not Correction.objects.filter(job=second).exists()


def test_the_migration_marks_region_only_reruns_carried_before_as_corrected(personas, media_root):
    """Re-runs carried before the fix kept version 0 though their scores count inside the regions."""
    from importlib import import_module

    from django.apps import apps

    from viewer.human_layer import correction_version

    slide = SlideFactory(case=personas["case"], width=1000, height=1000)
    first = store_job(slide, FIRST, FIRST_LABELS, "first")
    post(client_for(personas["pathologist"]), first, "regions", base_version=0, kind="tumour",
         vertices=[[0, 0], [400, 0], [400, 1000], [0, 1000]])
    rerun = store_job(slide, FIRST, FIRST_LABELS, "second")  # as carried before: no version, no report
    untouched = store_job(SlideFactory(case=personas["case"], width=1000, height=1000), FIRST, FIRST_LABELS, "other")
    assert correction_version(rerun) == 0
    import_module("viewer.migrations.0004_region_only_reruns_are_corrected").bump_region_only_runs(apps, None)
    assert correction_version(rerun) == 1 and correction_version(first) == 1
    assert correction_version(untouched) == 0  # no regions on its slide
