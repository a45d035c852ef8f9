"""A hot-spot field counts only when at least half of it lies in the counted area (viewer.hotspots): the
regions where a tumour area is drawn, else the slide's tissue (less any exclusions). A field with a sliver of
region or tissue and enough cells in it is no hot spot."""

import json

import numpy as np
import pytest
from django.conf import settings
from PIL import Image

from analysis.detection_store import write_store
from tests.viewer import DoneJobFactory, SlideFactory, client_for
from viewer import hotspots

pytestmark = pytest.mark.django_db


def make_job(case, xy, labels, w, h, mpp, file=None):
    slide = SlideFactory(case=case, width=w, height=h, mpp_x=mpp, mpp_y=mpp, **({"file": file} if file else {}))
    relative = f"jobs/hot-{slide.pk}/detections.store"
    write_store(settings.MEDIA_ROOT / relative, np.asarray(xy, np.float32), np.asarray(labels, np.int8),
                np.ones(len(xy), np.float32), width=w, height=h, mpp=mpp)
    return DoneJobFactory(slide=slide, result_file=relative, summary={"counts": {}})


def post_region(client, job, version, kind, vertices):
    r = client.post(f"/api/viewer/jobs/{job.pk}/regions/", json.dumps({"base_version": version, "kind": kind,
                    "vertices": vertices}), content_type="application/json")
    assert r.status_code == 201, r.content


def test_a_field_with_a_sliver_of_region_is_no_hot_spot(personas, media_root):
    """0.5 µm/px: 1 mm² fields of 2000 px. Field (0, 0) is all tumour area (30 % positive); field (1, 1) holds a
    10 x 10 px tumour area with 25 positive cells in it."""
    rng = np.random.default_rng(0)
    dense = rng.uniform([100, 100], [1900, 1900], size=(2000, 2))
    dense_labels = np.where(rng.random(2000) < 0.3, 1, 2)
    corner = [[2001 + i % 5, 2001 + i // 5] for i in range(25)]
    job = make_job(personas["case"], np.concatenate([dense, corner]), np.concatenate([dense_labels, [1] * 25]),
                   6000, 6000, 0.5)
    client = client_for(personas["pathologist"])
    post_region(client, job, 0, "tumour", [[0, 0], [2000, 0], [2000, 2000], [0, 2000]])
    post_region(client, job, 1, "tumour", [[2000, 2000], [2010, 2000], [2010, 2010], [2000, 2010]])
    body = client.get(f"/api/viewer/jobs/{job.pk}/hotspots/").json()
    assert body["coverage"]["basis"] == "regions" and body["min_coverage"] == 0.5
    assert body["tps"][1][1] is None and body["positive"][1][1] == 25  # counted, but no candidate
    top = body["top"]
    assert (top["row"], top["col"]) == (0, 0) and top["covered"] == 1.0 and top["tps"] < 40
    assert body["valid_fields"] == 1


def test_coverage_is_read_on_the_counted_area_less_exclusions():
    """A field half excluded (necrosis over its right half) is still a candidate; one 3/4 excluded is not."""
    from viewer.geometry import regions_from_pairs

    regions = regions_from_pairs([(True, [[0, 0], [400, 0], [400, 100], [0, 100]]),
                                  (False, [[50, 0], [100, 0], [100, 100], [50, 100]]),
                                  (False, [[125, 0], [200, 0], [200, 100], [125, 100]])])
    share = hotspots.field_coverage(np.arange(4), 4, 100.0, 400, 100, regions.mask)
    assert share[0] == pytest.approx(0.5) and share[1] == pytest.approx(0.25) and share[2:].tolist() == [1.0, 1.0]
    assert hotspots.field_coverage(np.arange(2), 2, 100.0, 150, 100, None).tolist() == [1.0, 0.5]  # off the slide


def test_without_regions_a_field_must_lie_on_tissue(personas, media_root):
    """5 µm/px: 1 mm² fields of 200 px on a 600 x 600 px image. Tissue covers x < 300 and a 20-px sliver at
    x 400-420 (field (0, 2): 10 % tissue) where 25 positive cells sit."""
    image = np.full((600, 600, 3), 245, np.uint8)
    image[:, :300] = (190, 110, 150)
    image[:200, 400:420] = (190, 110, 150)
    path = settings.MEDIA_ROOT / "slides" / "tissue.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    rng = np.random.default_rng(1)
    left = rng.uniform([10, 10], [190, 190], size=(40, 2))
    sliver = np.stack([np.full(25, 405.0) + np.arange(25) % 5 * 2, 20 + np.arange(25) * 6.0], axis=1)
    job = make_job(personas["case"], np.concatenate([left, sliver]), [1] * 8 + [2] * 32 + [1] * 25, 600, 600, 5.0,
                   file="slides/tissue.png")
    body = hotspots.job_hotspots(job)
    assert body["coverage"] == {"basis": "tissue", "note": ""}
    assert body["tps"][0][2] is None and body["positive"][0][2] == 25
    assert (body["top"]["row"], body["top"]["col"]) == (0, 0) and body["top"]["tps"] == 20.0


def test_an_unreadable_slide_is_stated_as_the_basis(personas, media_root):
    """A slide whose pixels cannot be read (no file here): the fields are measured against the slide, and the
    answer says so."""
    job = make_job(personas["case"], [[10, 10]] * 1, [1], 4000, 4000, 0.5)
    body = hotspots.job_hotspots(job, 1.0, 1)
    assert body["coverage"]["basis"] == "slide" and "could not be read" in body["coverage"]["note"]
    assert body["top"]["covered"] == 1.0
