"""Drawn include/exclude regions: validation, permissions, scores inside regions, soft delete,
hot-spot map, the report's scores and PDF region map."""

import json

import numpy as np
import pytest
from django.conf import settings

from analysis.detection_store import write_store
from tests.viewer import DoneJobFactory, SlideFactory, client_for, job_with_result
from viewer import hotspots, scores
from viewer.models import Region

pytestmark = pytest.mark.django_db

SQUARE = [[0, 0], [4000, 0], [4000, 6000], [0, 6000]]  # left half of the 8000 x 6000 slide


def url(job, tail="regions/"):
    return f"/api/viewer/jobs/{job.pk}/{tail}"


@pytest.fixture
def job(personas, media_root):
    return job_with_result(personas["case"], n=3000, seed=11)


@pytest.fixture
def client(personas):
    return client_for(personas["pathologist"])


def post(client, job, **data):
    return client.post(url(job), data, content_type="application/json")


def hand_made_job(case):
    """Points in known places: 4 positive + 1 negative in the left quarter, 1 positive + 3 negative
    in the right half, 2 negative at the bottom left (inside the left half too)."""
    slide = SlideFactory(case=case, width=1000, height=1000)
    xy = np.array([[100, 100], [110, 100], [120, 100], [130, 100], [140, 100],
                   [700, 500], [710, 500], [720, 500], [730, 500],
                   [100, 900], [110, 900]], np.float32)
    labels = np.array([1, 1, 1, 1, 2, 1, 2, 2, 2, 2, 2], np.int8)
    relative = f"jobs/hand-{slide.pk}/detections.store"
    write_store(settings.MEDIA_ROOT / relative, xy, labels, np.ones(len(xy), np.float32), width=1000, height=1000,
                mpp=0.5)
    return DoneJobFactory(slide=slide, result_file=relative, summary={"counts": {"positive": 5, "negative": 6}})


def test_scores_with_include_and_exclude_regions(personas, media_root, client):
    job = hand_made_job(personas["case"])
    assert scores.job_scores(job)["counts"] == {"positive": 5, "negative": 6, "other": 0}
    # Exclude only: everything outside the exclusion counts.
    r = post(client, job, base_version=0, kind="necrosis", vertices=[[600, 400], [800, 400], [800, 600], [600, 600]])
    assert r.status_code == 201, r.content
    assert r.json()["scores"]["counts"] == {"positive": 4, "negative": 3, "other": 0}
    assert r.json()["version"] == 1 and r.json()["item"]["include"] is False
    # An include region (left half): only points inside it, still minus exclusions.
    r = post(client, job, base_version=1, kind="tumour", vertices=[[0, 0], [500, 0], [500, 1000], [0, 1000]])
    assert r.json()["scores"]["counts"] == {"positive": 4, "negative": 3, "other": 0}
    r = post(client, job, base_version=2, kind="artefact", vertices=[[50, 850], [200, 850], [200, 950], [50, 950]])
    body = r.json()
    assert body["scores"]["counts"] == {"positive": 4, "negative": 1, "other": 0}
    assert body["scores"]["tps"] == 80.0
    # Viewer (corrections endpoint), reports and PDF read the same numbers.
    assert client.get(f"/api/viewer/jobs/{job.pk}/corrections/").json()["scores"]["counts"]["negative"] == 1
    from cases.reports import score_snapshot

    snap = score_snapshot(personas["case"], job)
    assert snap["counts"] == {"positive": 4, "negative": 1, "other": 0} and snap["corrections_version"] == 3
    # A correction on top: reclassify the negative in the top-left cluster.
    r = client.post(f"/api/viewer/jobs/{job.pk}/corrections/",
                    {"base_version": 3, "op": "reclassify", "detection": 4, "label": "positive"},
                    content_type="application/json")
    assert r.status_code == 201 and r.json()["scores"]["counts"] == {"positive": 5, "negative": 0, "other": 0}

    # Soft delete: the artefact region goes, history keeps it.
    include_id = Region.objects.get(slide=job.slide, kind="artefact").pk
    r = client.delete(url(job, f"regions/{include_id}/"), {"base_version": 4}, content_type="application/json")
    assert r.status_code == 200, r.content
    assert r.json()["scores"]["counts"] == {"positive": 5, "negative": 2, "other": 0}
    assert r.json()["item"]["active"] is False and r.json()["item"]["deleted_by"] == "pathologist"
    assert Region.objects.filter(slide=job.slide).count() == 3
    listed = client.get(url(job)).json()
    assert len(listed["items"]) == 2 and listed["version"] == 5
    assert len(client.get(url(job) + "?all=1").json()["items"]) == 3
    again = client.delete(url(job, f"regions/{include_id}/") + "?base_version=5")
    assert again.status_code == 400 and "already deleted" in again.json()["detail"]


def test_stale_version_is_a_conflict(client, job):
    assert post(client, job, base_version=0, kind="tumour", vertices=SQUARE).status_code == 201
    r = post(client, job, base_version=0, kind="necrosis", vertices=SQUARE)
    assert r.status_code == 409 and r.json()["version"] == 1 and "pathologist" in r.json()["detail"]


@pytest.mark.parametrize("vertices, message", [
    ([[0, 0], [10, 0]], "at least 3 vertices"),
    ([[0, 0], [10, 0], [0, 0]], "at least 3 vertices"),  # a closed ring of two
    ([[0, 0], [10, 0], [20, 0]], "no area"),
    ([[0, 0], [9000, 0], [100, 100]], "outside the slide"),
    ([[-1, 0], [10, 0], [10, 10]], "outside the slide"),
    ([[0, 0], [100, 100], [100, 0], [0, 100]], "crosses itself"),  # a bow tie
    ([[0, 0], [10, 0], "x"], "vertex 2"),
    ("nope", "vertices must be a list"),
    ([[0, 0], [10, 0], [10, 10], [0, 0], [5, 5]], "repeats a vertex"),
])
def test_bad_regions_are_400(client, job, vertices, message):
    r = post(client, job, base_version=0, kind="necrosis", vertices=vertices)
    assert r.status_code == 400 and message in r.json()["detail"], r.content
    assert not Region.objects.exists()


def test_bad_kind_and_version(client, job):
    r = post(client, job, base_version=0, kind="stroma", vertices=SQUARE)
    assert r.status_code == 400 and "kind must be one of" in r.json()["detail"]
    r = post(client, job, kind="tumour", vertices=SQUARE)
    assert r.status_code == 400 and "base_version" in r.json()["detail"]
    r = client.delete(url(job, "regions/999/") + "?base_version=0")
    assert r.status_code == 400 and "does not exist" in r.json()["detail"]


def test_closed_ring_is_accepted(client, job):
    r = post(client, job, base_version=0, kind="tumour", vertices=SQUARE + [SQUARE[0]])
    assert r.status_code == 201 and len(r.json()["item"]["vertices"]) == 4


def test_permissions(personas, job, client):
    assert post(client, job, base_version=0, kind="tumour", vertices=SQUARE).status_code == 201
    region = Region.objects.get()
    admin = client_for(personas["admin"])
    assert admin.get(url(job)).status_code == 200
    for persona, code in {"outsider": 404, "annotator": 403, "clinician": 403, "norole": 403}.items():
        other = client_for(personas[persona])
        assert other.get(url(job)).status_code == code, persona
        assert post(other, job, base_version=1, kind="tumour", vertices=SQUARE).status_code == code, persona
        assert other.delete(url(job, f"regions/{region.pk}/") + "?base_version=1").status_code == code, persona
        assert other.get(url(job, "hotspots/")).status_code == code, persona
    assert client_for(None).get(url(job)).status_code == 401  # token authentication first: 401
    assert Region.objects.get().is_active


def test_hotspot_grid_on_a_synthetic_store():
    field = 100.0
    rng = np.random.default_rng(3)
    # Field (0, 0): 30 cells, 24 positive (80 %); field (1, 2): 40 cells, 10 positive (25 %);
    # field (0, 1): 10 cells only (below min_cells); others empty.
    parts = [(rng.uniform([0, 0], [100, 100], (30, 2)), [1] * 24 + [2] * 6),
             (rng.uniform([200, 100], [300, 200], (40, 2)), [1] * 10 + [2] * 30),
             (rng.uniform([100, 0], [200, 100], (10, 2)), [1] * 10)]
    xy = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([np.asarray(p[1], np.int8) for p in parts])
    out = hotspots.hotspot_grid(xy, labels, width=300, height=250, field_px=field, min_cells=20)
    assert out["shape"] == [3, 3]
    assert out["tps"][0][0] == 80.0 and out["tps"][1][2] == 25.0
    assert out["tps"][0][1] is None and out["tps"][2][2] is None
    assert out["valid_fields"] == 2
    assert out["top"]["row"] == 0 and out["top"]["col"] == 0 and out["top"]["tps"] == 80.0
    assert out["top"]["x1"] == 100.0 and out["positive"][0][1] == 10


def test_hotspots_endpoint_with_regions(client, job):
    body = client.get(url(job, "hotspots/")).json()
    # 0.5 µm/px: a 1 mm² field is 2000 px; the 8000 x 6000 slide makes a 3 x 4 grid, ~250 cells each.
    assert body["field_px"] == 2000.0 and body["shape"] == [3, 4] and body["regions_applied"] is False
    assert all(v is not None for row in body["tps"] for v in row)
    assert body["top"]["tps"] == max(v for row in body["tps"] for v in row)
    post(client, job, base_version=0, kind="tumour", vertices=SQUARE)
    body = client.get(url(job, "hotspots/") + "?field_mm2=1&min_cells=20").json()
    assert body["regions_applied"] is True
    assert all(row[2] is None and row[3] is None for row in body["tps"])  # outside the include region
    assert body["top"]["col"] in (0, 1)
    assert client.get(url(job, "hotspots/") + "?field_mm2=0").status_code == 400
    assert client.get(url(job, "hotspots/") + "?min_cells=x").status_code == 400


def test_report_pdf_draws_the_region_map(personas, job, client):
    from cases.report_pdf import _draw_regions, overlay_images

    post(client, job, base_version=0, kind="necrosis", vertices=[[1000, 1000], [3000, 1000], [3000, 3000]])
    dots, _ = overlay_images(job.slide, job)
    plain, _ = overlay_images(job.slide, None)
    assert _draw_regions(plain.copy(), job, 1, 1) == 1
    sx = dots.size[0] / job.slide.width
    # The triangle's top edge is black on the region map.
    x, y = round(2000 * sx), round(1000 * sx)
    assert any(sum(dots.getpixel((x, y + d))) < 100 for d in (-1, 0, 1))


def test_each_region_has_its_counts_tps_and_area(personas, media_root, client):
    """Issue 18 item 9: per-region counts, TPS and area in mm² (0.5 µm/px: 500 x 1000 px is 0.125 mm²)."""
    job = hand_made_job(personas["case"])
    left = post(client, job, base_version=0, kind="tumour", vertices=[[0, 0], [500, 0], [500, 1000], [0, 1000]])
    item = left.json()["item"]
    assert item["counts"] == {"positive": 4, "negative": 3} and item["tps"] == 57.14
    assert item["area_mm2"] == pytest.approx(0.125)
    post(client, job, base_version=1, kind="necrosis", vertices=[[600, 400], [800, 400], [800, 600], [600, 600]])
    # A correction changes the counts of the region it falls in.
    fixed = client.post(f"/api/viewer/jobs/{job.pk}/corrections/", {"base_version": 2, "op": "reclassify", "detection": 5,
                                                            "label": "negative"}, content_type="application/json")
    assert fixed.status_code == 201, fixed.content
    items = {i["kind"]: i for i in client.get(url(job)).json()["items"]}
    assert items["necrosis"]["counts"] == {"positive": 0, "negative": 4} and items["necrosis"]["tps"] == 0.0
    assert items["necrosis"]["area_mm2"] == pytest.approx(0.01)
    assert items["tumour"]["counts"] == {"positive": 4, "negative": 3}
    empty = post(client, job, base_version=3, kind="artefact", vertices=[[900, 900], [990, 900], [990, 990]])
    assert empty.json()["item"]["counts"] == {"positive": 0, "negative": 0} and empty.json()["item"]["tps"] is None


def test_every_micrometre_of_a_result_is_read_at_the_pixel_size_it_was_analysed_at(personas, media_root):
    """The slide's mpp set again after the analysis: a region's area and the hot-spot fields still agree
    (both at the run's own pixel size), as do the export's stated mpp."""
    from viewer.hotspots import job_hotspots
    from viewer.stores import job_mpp, job_store

    job = job_with_result(personas["case"], n=2000, seed=3, width=4000, height=4000)
    run_mpp = job_store(job).mpp
    job.slide.mpp_x = job.slide.mpp_y = run_mpp / 2  # the pixel size corrected after the analysis
    job.slide.save()
    assert job_mpp(job, job_store(job)) == run_mpp
    side_px = 2000
    client = client_for(personas["pathologist"])
    item = client.post(f"/api/viewer/jobs/{job.pk}/regions/", {"base_version": 0, "kind": "tumour",
                       "vertices": [[0, 0], [side_px, 0], [side_px, side_px], [0, side_px]]},
                       content_type="application/json").json()["item"]
    field_mm2 = item["area_mm2"]
    hot = job_hotspots(job, field_mm2, 1)
    assert hot["field_px"] == pytest.approx(side_px, rel=1e-3)  # a field of the region's area is the region
    exported = client.get(f"/api/viewer/jobs/{job.pk}/corrections/export/?format=geojson")
    assert exported.status_code == 200 and json.loads(exported.content)["properties"]["mpp"] == run_mpp
