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
    old_xy = FIRST  # every detection of the old run
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


class _Row:  # the source Correction row of a correction, as sources_of gives it
    def __init__(self, pk):
        self.pk = pk


def test_a_deleted_duplicate_is_not_carried_to_the_real_cell():
    """The earlier run found one nucleus twice 3.5 µm apart (7 px); the pathologist deleted the duplicate
    B. The re-run finds the nucleus once, next to A: that detection is A's, the delete is not carried
    (it used to delete the real cell, reported as carried)."""
    old_xy = np.array([[1000.0, 1000.0], [1007.0, 1000.0], [1060.0, 1000.0]])  # A, B (deleted), another cell
    new_xy = np.array([[1001.0, 1000.0], [1040.0, 1000.0], [1061.0, 1000.0]])
    plan = carry.plan_carry(old_xy, CorrectionState(deleted={1}), {("d", 1): _Row(7)}, new_xy, [1, 2, 1],
                            radius_px=8.0)
    assert plan.ops == [] and plan.already == 0
    assert plan.missed == [{"correction": 7, "op": "delete", "x": 1007.0, "y": 1000.0, "label": None,
                            "reason": carry.MATCHED_ELSEWHERE.format(r=4)}]
    report = {"from_job": 3, "carried": 0, "not_carried": plan.missed, "reason": carry.carry_reason(plan.missed)}
    assert "are other cells of the earlier analysis" in carry.carry_message(report)
    # A reclassified duplicate: the same, the real cell keeps the class the new run gives it.
    plan = carry.plan_carry(old_xy, CorrectionState(relabelled={1: 2}), {}, new_xy, [1, 2, 1], radius_px=8.0)
    assert plan.ops == [] and [m["op"] for m in plan.missed] == ["reclassify"]
    # The duplicate deleted and the real one kept: found twice again, the delete goes to the duplicate's
    # counterpart, whichever of the new pair is nearer overall.
    twice = np.array([[1006.0, 1000.0], [1001.0, 1000.0]])
    plan = carry.plan_carry(old_xy, CorrectionState(deleted={1}), {}, twice, [1, 1], radius_px=8.0)
    assert [(op["op"], op["detection"]) for op in plan.ops] == [("delete", 0)] and plan.missed == []


def test_an_added_cell_is_not_the_detection_of_another_cell():
    """An added cell 3 µm from a detection the pathologist kept: the re-run's detection there is the
    kept cell's, the added cell is added again (it used to be merged into the neighbour)."""
    old_xy = np.array([[500.0, 500.0]])
    state = CorrectionState(added={9: [506.0, 500.0, 2]})
    plan = carry.plan_carry(old_xy, state, {}, [[501.0, 500.0]], [1], radius_px=8.0)
    assert [{k: v for k, v in op.items() if k != "source"} for op in plan.ops] == [
        {"op": "add", "x": 506.0, "y": 500.0, "label": 2}]


def test_a_shifted_rerun_carries_everything_one_to_one():
    """A whole re-run 5 px off (more than half the spacing of a tight row of cells, so the nearest new
    detection of some old ones is their neighbour's): every correction still lands on its own cell."""
    old_xy = np.array([[100.0 + 9 * k, 100.0] for k in range(20)])
    new_xy = old_xy + [5.0, 0.0]
    state = CorrectionState(deleted={3, 4}, relabelled={5: 2, 6: 1})
    plan = carry.plan_carry(old_xy, state, {}, new_xy, [1] * 20, radius_px=8.0)
    assert [(op["op"], op["detection"]) for op in plan.ops] == [("delete", 3), ("delete", 4), ("reclassify", 5)]
    assert plan.already == 1 and plan.missed == []


def test_a_rerun_does_not_delete_the_cell_whose_duplicate_was_deleted(personas, media_root,
                                                                       django_capture_on_commit_callbacks):
    slide = SlideFactory(case=personas["case"], width=2000, height=2000)
    first = store_job(slide, [[1000, 1000], [1007, 1000], [1100, 1000]], [1, 1, 2], "first")
    client = client_for(personas["pathologist"])
    post(client, first, "corrections", base_version=0, op="delete", detection=1)
    post(client, first, "corrections", base_version=1, op="delete", detection=2)
    with django_capture_on_commit_callbacks(execute=True):
        second = store_job(slide, [[1001, 1000], [1102, 1000]], [1, 2], "second")
    body = client.get(f"/api/viewer/jobs/{second.pk}/corrections/").json()
    report = body["carry_over"]
    assert report["carried"] == 1 and [m["x"] for m in report["not_carried"]] == [1007.0]
    assert [(c.op, c.detection) for c in Correction.objects.filter(job=second)] == [("delete", 1)]
    assert body["scores"]["counts"]["positive"] == 1  # the real cell counts
