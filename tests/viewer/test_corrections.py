"""Corrections: counts and TPS, overlay on top of the model output, undo, conflicts, bad input, export."""

import csv
import io
import json

import numpy as np
import pytest
from auditlog.models import LogEntry

from analysis.detection_store import open_store
from analysis.scoring import tps
from tests.viewer import client_for, job_with_result
from viewer.models import Correction, CorrectionSet

pytestmark = pytest.mark.django_db


def url(job, action="corrections"):
    return f"/api/viewer/jobs/{job.pk}/{action}/"


@pytest.fixture
def job(personas, media_root):
    return job_with_result(personas["case"], n=3000, seed=5)


@pytest.fixture
def client(personas):
    return client_for(personas["pathologist"])


def post(client, job, **data):
    return client.post(url(job), data, content_type="application/json")


def store_of(job, media_root):
    return open_store(media_root / job.result_file)


def first_of_label(job, media_root, label, skip=0):
    return int(np.flatnonzero(store_of(job, media_root).all().labels == label)[skip])


def test_empty_corrections_give_the_model_scores(client, job):
    body = client.get(url(job)).json()
    counts = job.summary["counts"]
    assert body["version"] == 0 and body["items"] == []
    assert body["scores"]["counts"] == counts
    assert body["scores"]["tps"] == pytest.approx(tps(counts["positive"], counts["negative"]), abs=0.01)
    assert body["scores"]["tps_category"] == ("TPS >= 50%" if body["scores"]["tps"] >= 50 else "TPS 1-49%")


def test_add_delete_reclassify_change_counts_and_tps(client, job, media_root, personas):
    pos, neg = job.summary["counts"]["positive"], job.summary["counts"]["negative"]
    added = post(client, job, base_version=0, op="add", x=100.25, y=200.5, label="positive")
    assert added.status_code == 201, added.content
    body = added.json()
    assert body["version"] == 1 and body["item"]["op"] == "add" and body["item"]["author"] == "pathologist"
    assert body["scores"]["counts"] == {"positive": pos + 1, "negative": neg, "other": 0}

    victim = first_of_label(job, media_root, 2)
    body = post(client, job, base_version=1, op="delete", detection=victim).json()
    assert body["scores"]["counts"] == {"positive": pos + 1, "negative": neg - 1, "other": 0}

    flipped = first_of_label(job, media_root, 2, skip=1)
    body = post(client, job, base_version=2, op="reclassify", detection=flipped, label="positive").json()
    assert body["version"] == 3
    assert body["scores"]["counts"] == {"positive": pos + 2, "negative": neg - 2, "other": 0}
    assert body["scores"]["tps"] == pytest.approx(100 * (pos + 2) / (pos + neg), abs=0.01)

    # the overlay shows the corrected result: deleted gone, reclassified relabelled, added included
    points = client.get(url(job, "points"), {"x0": 0, "y0": 0, "x1": 8000, "y1": 6000, "max": 100000}).json()
    ids = points["ids"]
    assert victim not in ids and points["total"] == pos + neg
    assert points["labels"][ids.index(flipped)] == 1 and points["corrected"][ids.index(flipped)] is True
    added_id = f"c{added.json()['item']['id']}"
    at = ids.index(added_id)
    assert points["xy"][at] == [100.2, 200.5] or points["xy"][at] == [100.3, 200.5]
    assert points["labels"][at] == 1 and points["corrected"][at] is True
    assert client.get(url(job, f"points/{added_id}")).json()["corrected"] is True
    assert client.get(url(job, f"points/{victim}")).status_code == 404
    # density follows the corrections too
    density = client.get(url(job, "density"), {"grid_px": 1000}).json()
    assert np.sum(density["positive"]) == pos + 2 and np.sum(density["negative"]) == neg - 2

    # the detection store is never modified
    assert len(store_of(job, media_root)) == 3000
    assert store_of(job, media_root).counts == {1: pos, 2: neg}

    # corrections on an added point, then the full history
    body = post(client, job, base_version=3, op="reclassify", detection=added_id, label="negative").json()
    assert body["scores"]["counts"]["negative"] == neg - 1
    body = post(client, job, base_version=4, op="delete", detection=added_id).json()
    assert body["scores"]["counts"] == {"positive": pos + 1, "negative": neg - 2, "other": 0}
    history = client.get(url(job)).json()
    assert history["version"] == 5 and [i["op"] for i in history["items"]] == [
        "add", "delete", "reclassify", "reclassify", "delete"]
    assert LogEntry.objects.get_for_model(Correction).count() == 5  # audited


def test_undo_is_an_inverse_correction_and_keeps_history(client, job, media_root):
    pos, neg = job.summary["counts"]["positive"], job.summary["counts"]["negative"]
    victim = first_of_label(job, media_root, 1)
    deleted = post(client, job, base_version=0, op="delete", detection=victim).json()["item"]
    body = post(client, job, base_version=1, op="undo", target=deleted["id"]).json()
    assert body["scores"]["counts"] == {"positive": pos, "negative": neg, "other": 0}
    items = client.get(url(job)).json()["items"]
    assert [(i["op"], i["active"]) for i in items] == [("delete", False), ("undo", False)]
    assert items[0]["undone_by"] == items[1]["id"]
    assert client.get(url(job, f"points/{victim}")).status_code == 200
    again = post(client, job, base_version=2, op="undo", target=deleted["id"])
    assert again.status_code == 400 and "already undone" in again.json()["detail"]


def test_a_stale_version_is_a_409_with_who_and_when(personas, job, media_root):
    from django.contrib.auth.models import Group

    colleague = personas["admin"]
    colleague.groups.add(Group.objects.get(name="pathologist"))
    first, second = client_for(personas["pathologist"]), client_for(colleague)
    assert post(first, job, base_version=0, op="add", x=10, y=10, label="negative").status_code == 201
    stale = post(second, job, base_version=0, op="delete", detection=first_of_label(job, media_root, 1))
    assert stale.status_code == 409
    body = stale.json()
    assert body["version"] == 1
    assert body["detail"].startswith("This slide was corrected by pathologist at ")
    assert body["detail"].endswith(" since you loaded it; reload to see their change.")
    assert Correction.objects.count() == 1 and CorrectionSet.objects.get(job=job).version == 1
    assert post(second, job, base_version=1, op="delete", detection=first_of_label(job, media_root, 1)).status_code == 201


@pytest.mark.parametrize("data, message", [
    ({"op": "add", "x": 1, "y": 1, "label": "positive"}, "base_version is required"),
    ({"base_version": "x", "op": "add", "x": 1, "y": 1, "label": "positive"}, "base_version must be an integer"),
    ({"base_version": 0, "op": "move"}, "op must be one of"),
    ({"base_version": 0, "op": "add", "x": 1, "y": 1, "label": "stroma"}, "label must be positive or negative"),
    ({"base_version": 0, "op": "add", "x": 8000, "y": 1, "label": "positive"}, "outside the slide"),
    ({"base_version": 0, "op": "add", "x": -1, "y": 1, "label": "positive"}, "outside the slide"),
    ({"base_version": 0, "op": "add", "x": "a", "y": 1, "label": "positive"}, "x must be a number"),
    ({"base_version": 0, "op": "delete", "detection": 3000}, "does not exist"),
    ({"base_version": 0, "op": "delete"}, "detection is required"),
    ({"base_version": 0, "op": "delete", "detection": "c77"}, "does not exist"),
    ({"base_version": 0, "op": "reclassify", "detection": 0, "label": None}, "label must be"),
    ({"base_version": 0, "op": "undo", "target": 12345}, "does not exist"),
])
def test_bad_input_is_a_400_and_saves_nothing(client, job, data, message):
    response = client.post(url(job), data, content_type="application/json")
    assert response.status_code == 400 and message in response.json()["detail"], response.json()
    assert Correction.objects.count() == 0 and CorrectionSet.objects.filter(version__gt=0).count() == 0


def test_deleting_twice_and_reclassifying_to_the_same_label_are_400(client, job, media_root):
    victim = first_of_label(job, media_root, 2)
    assert post(client, job, base_version=0, op="delete", detection=victim).status_code == 201
    again = post(client, job, base_version=1, op="delete", detection=victim)
    assert again.status_code == 400 and "already deleted" in again.json()["detail"]
    same = post(client, job, base_version=1, op="reclassify", detection=first_of_label(job, media_root, 1),
                label="positive")
    assert same.status_code == 400 and "already positive" in same.json()["detail"]
    assert Correction.objects.count() == 1


def test_permissions_for_corrections(personas, job):
    data = {"base_version": 0, "op": "add", "x": 1, "y": 1, "label": "positive"}
    for persona, code in {"outsider": 404, "annotator": 403, "clinician": 403, "norole": 403}.items():
        response = client_for(personas[persona]).post(url(job), data, content_type="application/json")
        assert response.status_code == code, persona
    assert client_for(None).post(url(job), data, content_type="application/json").status_code == 401
    assert client_for(None).get(url(job, "corrections/export")).status_code == 401
    assert client_for(personas["outsider"]).get(url(job, "corrections/export")).status_code == 404
    assert Correction.objects.count() == 0


def test_export_is_the_full_corrected_point_set(client, job, media_root):
    pos, neg = job.summary["counts"]["positive"], job.summary["counts"]["negative"]
    victim = first_of_label(job, media_root, 2)
    post(client, job, base_version=0, op="delete", detection=victim)
    post(client, job, base_version=1, op="add", x=50, y=60, label="positive")

    response = client.get(url(job, "corrections/export"), {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == pos + neg and set(rows[0]) == {"x", "y", "label", "source", "in_regions"}
    assert sum(r["label"] == "positive" for r in rows) == pos + 1
    assert {"x": "50.0", "y": "60.0", "label": "positive", "source": "added", "in_regions": "yes"} in rows
    assert sum(r["source"] == "model" for r in rows) == pos + neg - 1  # the rest: unreviewed model output
    victim_xy = store_of(job, media_root).all().xy[victim].round(1)
    assert not any(float(r["x"]) == victim_xy[0] and float(r["y"]) == victim_xy[1] for r in rows)

    geo = client.get(url(job, "corrections/export"), {"format": "geojson"})
    assert geo.status_code == 200 and geo["Content-Type"] == "application/geo+json"
    body = json.loads(geo.content)
    assert body["type"] == "FeatureCollection" and body["properties"]["corrections_version"] == 2
    points = {}
    for f in body["features"]:
        key = (f["properties"]["classification"]["name"], f["properties"]["source"])
        points[key] = points.get(key, 0) + len(f["geometry"]["coordinates"])
        assert f["geometry"]["type"] == "MultiPoint" and f["properties"]["in_regions"] is True
    assert points == {("Positive", "model"): pos, ("Positive", "added"): 1, ("Negative", "model"): neg - 1}
    assert all(f["properties"]["objectType"] == "annotation" for f in body["features"])

    assert client.get(url(job, "corrections/export")).status_code == 200  # csv by default


def test_counts_alone_give_no_category():
    """A category needs the adequacy minimum and the case's cut-off table: only viewer.scores.job_scores
    gives one (through analysis.scoring.score_summary, tests/viewer/test_scores_adequacy.py)."""
    from viewer.overlay import scores_from_counts

    assert scores_from_counts({"positive": 30, "negative": 70, "other": 0}) == {
        "counts": {"positive": 30, "negative": 70, "other": 0}, "tps": 30.0}


def test_every_geojson_export_writes_the_one_vocabulary(client, job):
    """Viewer export, detect_nuclei and annotation exports go through analysis.geojson: the label
    colours are analysis.labels.LABEL_RGB (the viewer's export used to write negatives blue)."""
    from analysis.labels import LABEL_RGB, NEGATIVE, POSITIVE
    from analysis.management.commands.detect_nuclei import to_geojson

    body = json.loads(client.get(url(job, "corrections/export"), {"format": "geojson"}).content)
    colours = {f["properties"]["classification"]["name"]: f["properties"]["classification"]["color"]
               for f in body["features"]}
    assert colours == {"Positive": list(LABEL_RGB[POSITIVE]), "Negative": list(LABEL_RGB[NEGATIVE])}
    detections = to_geojson(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1, 2]), np.array([0.9, 0.8]))
    assert [f["properties"]["classification"] for f in detections["features"]] == [
        {"name": "Positive", "color": list(LABEL_RGB[POSITIVE])}, {"name": "Negative", "color": list(LABEL_RGB[NEGATIVE])}]


def test_an_overview_never_pairs_a_newer_version_with_older_items(personas, media_root, monkeypatch):
    """A colleague saves between the read of the items and the read of the version: the page must not get
    the new version with the old items (its next save would be accepted against a state it never saw)."""
    import viewer.corrections as corrections_module
    import viewer.human_layer as human_layer
    from tests.viewer import job_with_result

    job = job_with_result(personas["case"], n=300, seed=2)
    real = human_layer.correction_version
    calls = {"n": 0}

    def colleague_saves_after_the_first_read(j):
        calls["n"] += 1
        if calls["n"] == 2:  # after the version read before the items, before the one after
            corrections_module.do_add_correction(j, personas["admin"], {"base_version": real(j), "op": "add",
                                                                        "x": 5, "y": 5, "label": "positive"})
        return real(j)

    monkeypatch.setattr(human_layer, "correction_version", colleague_saves_after_the_first_read)
    body = corrections_module.corrections_overview(job)
    assert body["version"] == len(body["items"]) == 1  # read again: the colleague's point and its version



def test_the_export_tells_reviewed_points_from_model_output_and_marks_what_the_regions_count(client, job, media_root):
    """Re-imported as annotations, the detector's unreviewed points must not pass for human labels; points
    outside the slide's regions (not counted by the viewer or the report) say so."""
    victim = first_of_label(job, media_root, 2)
    assert post(client, job, base_version=0, op="reclassify", detection=victim, label="positive").status_code == 201
    response = client.post(url(job, "regions"), {"base_version": 1, "kind": "tumour",
                           "vertices": [[0, 0], [500, 0], [500, 500], [0, 500]]}, content_type="application/json")
    assert response.status_code == 201, response.content
    rows = list(csv.DictReader(io.StringIO(client.get(url(job, "corrections/export"), {"format": "csv"}).content.decode())))
    victim_xy = store_of(job, media_root).all().xy[victim].round(1)
    (relabelled,) = [r for r in rows if r["source"] == "relabelled"]
    assert (float(relabelled["x"]), float(relabelled["y"])) == tuple(victim_xy) and relabelled["label"] == "positive"
    inside = [r for r in rows if float(r["x"]) <= 500 and float(r["y"]) <= 500]
    assert inside and all(r["in_regions"] == "yes" for r in inside)
    assert all(r["in_regions"] == "no" for r in rows if r not in inside)
