"""An added point on top of a live point (a model detection not deleted, or an earlier added point) is
refused: the same cell would count twice in the report (viewer.corrections.check_free_spot)."""

import json

import numpy as np
import pytest
from django.conf import settings

from analysis.detection_store import write_store
from tests.viewer import DoneJobFactory, SlideFactory, client_for
from viewer.models import Correction

pytestmark = pytest.mark.django_db


def two_cell_job(case, mpp=0.5, slide_mpp=0.5):
    """Detection 0 positive at (100, 100), detection 1 negative at (300, 300); the store at `mpp`."""
    slide = SlideFactory(case=case, width=1000, height=1000, mpp_x=slide_mpp, mpp_y=slide_mpp)
    relative = f"jobs/dup-{slide.pk}/detections.store"
    write_store(settings.MEDIA_ROOT / relative, np.array([[100, 100], [300, 300]], np.float32),
                np.array([1, 2], np.int8), np.ones(2, np.float32), width=1000, height=1000, mpp=mpp)
    return DoneJobFactory(slide=slide, result_file=relative, summary={"counts": {"positive": 1, "negative": 1}})


@pytest.fixture
def client(personas):
    return client_for(personas["pathologist"])


def post(client, job, **data):
    return client.post(f"/api/viewer/jobs/{job.pk}/corrections/", json.dumps(data), content_type="application/json")


def counts(client, job):
    return client.get(f"/api/viewer/jobs/{job.pk}/corrections/").json()["scores"]["counts"]


def test_an_add_on_a_model_detection_is_refused_and_names_it(personas, media_root, client):
    job = two_cell_job(personas["case"])
    before = counts(client, job)
    for _ in range(2):  # repeatedly: never a second count of the cell
        r = post(client, job, base_version=0, op="add", x=100, y=100, label="positive")
        assert r.status_code == 400, r.content
        assert r.json()["point"] == 0 and "detection 0" in r.json()["detail"]
    # 5.9 px = 2.95 µm at 0.5 µm/px: closer than the merge's 3 µm dedupe radius, the same cell
    r = post(client, job, base_version=0, op="add", x=305.9, y=300, label="negative")
    assert r.status_code == 400 and r.json()["point"] == 1
    assert not Correction.objects.filter(job=job).exists() and counts(client, job) == before
    # 6.2 px = 3.1 µm away: another cell
    assert post(client, job, base_version=0, op="add", x=306.2, y=300, label="negative").status_code == 201


def test_an_add_on_an_earlier_added_point_is_refused(personas, media_root, client):
    job = two_cell_job(personas["case"])
    first = post(client, job, base_version=0, op="add", x=500, y=500, label="positive")
    assert first.status_code == 201
    point_id = first.json()["item"]["point_id"]
    r = post(client, job, base_version=1, op="add", x=501, y=500.5, label="negative")
    assert r.status_code == 400 and r.json()["point"] == point_id and point_id in r.json()["detail"]
    assert counts(client, job) == {"positive": 2, "negative": 1, "other": 0}


def test_a_deleted_or_undone_point_leaves_its_spot_free(personas, media_root, client):
    job = two_cell_job(personas["case"])
    assert post(client, job, base_version=0, op="delete", detection=0).status_code == 201
    assert post(client, job, base_version=1, op="add", x=100, y=100, label="negative").status_code == 201
    added = post(client, job, base_version=2, op="add", x=600, y=600, label="positive").json()["item"]
    assert post(client, job, base_version=3, op="undo", target=added["id"]).status_code == 201
    assert post(client, job, base_version=4, op="add", x=600, y=600, label="positive").status_code == 201
    assert counts(client, job) == {"positive": 1, "negative": 2, "other": 0}


def test_the_radius_is_read_at_the_jobs_pixel_size(personas, media_root, client):
    """The store's mpp (the one the analysis ran at), not the slide's: 8 px is 2 µm at 0.25 µm/px."""
    job = two_cell_job(personas["case"], mpp=0.25, slide_mpp=0.5)
    r = post(client, job, base_version=0, op="add", x=108, y=100, label="positive")
    assert r.status_code == 400 and r.json()["point"] == 0 and "2.0 µm" in r.json()["detail"]


def test_the_radius_is_the_jobs_own_dedupe_radius(personas, media_root, client):
    """A job merged with a 1.5 µm dedupe radius counts cells 2 µm apart as two: so may a pathologist."""
    job = two_cell_job(personas["case"])
    job.parameters = {"dedupe_radius_um": 1.5}
    job.save(update_fields=["parameters"])
    assert post(client, job, base_version=0, op="add", x=302.5, y=300, label="negative").status_code == 400  # 1.25 µm
    r = post(client, job, base_version=0, op="add", x=304.0, y=300, label="negative")  # 2 µm: another cell
    assert r.status_code == 201, r.content
