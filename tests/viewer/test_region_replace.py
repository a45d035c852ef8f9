"""Replacing a region (an edit of its vertices, its undo and redo) is one save: POST regions with `replaces`
soft-deletes the old outline and creates the new one in one transaction at one version, so a refused save
changes neither. As two requests (add, then delete), a 409 on the delete left both outlines counting."""

import json

import pytest

from tests.viewer import client_for, job_with_result
from viewer.models import CorrectionSet, Region

pytestmark = pytest.mark.django_db
LEFT = [[0, 0], [4000, 0], [4000, 6000], [0, 6000]]
SMALL = [[0, 0], [1000, 0], [1000, 1000], [0, 1000]]


@pytest.fixture
def job(personas, media_root):
    return job_with_result(personas["case"], n=3000, seed=11)


@pytest.fixture
def client(personas):
    return client_for(personas["pathologist"])


def post(client, job, **data):
    return client.post(f"/api/viewer/jobs/{job.pk}/regions/", json.dumps(data), content_type="application/json")


def version(job):
    return CorrectionSet.objects.get(job=job).version


def test_a_replace_deletes_the_old_outline_and_saves_the_new_at_one_version(client, job):
    old = post(client, job, base_version=0, kind="tumour", vertices=LEFT).json()["item"]
    r = post(client, job, base_version=1, kind="tumour", vertices=SMALL, replaces=old["id"])
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["version"] == 2 == version(job)
    assert body["replaced"]["id"] == old["id"] and body["replaced"]["active"] is False
    assert body["replaced"]["deleted_version"] == 2 and body["item"]["version"] == 2
    (active,) = Region.objects.filter(slide=job.slide, deleted_at__isnull=True)
    assert active.pk == body["item"]["id"] and active.vertices == SMALL
    listed = client.get(f"/api/viewer/jobs/{job.pk}/regions/").json()
    assert [i["id"] for i in listed["items"]] == [active.pk] and listed["scores"] == body["scores"]
    assert body["scores"]["counts"] == body["item"]["counts"] | {"other": 0}  # only the new outline counts


def test_a_stale_replace_changes_neither_outline(client, job, personas):
    old = post(client, job, base_version=0, kind="tumour", vertices=LEFT).json()["item"]
    colleague = client_for(personas["admin"])
    assert post(colleague, job, base_version=1, kind="necrosis", vertices=SMALL).status_code == 201
    r = post(client, job, base_version=1, kind="tumour", vertices=SMALL, replaces=old["id"])
    assert r.status_code == 409 and r.json()["version"] == 2
    assert version(job) == 2 and Region.objects.get(pk=old["id"]).is_active
    assert Region.objects.filter(slide=job.slide).count() == 2  # no new outline beside the old one


@pytest.mark.parametrize("replaces, message", [
    (999_999, "does not exist"), ("x", "replaces must be an integer"), (True, "replaces must be an integer"),
    (10 ** 400, "replaces must be between"), (0, "replaces must be between")])
def test_a_replace_of_no_active_region_is_refused(client, job, replaces, message):
    post(client, job, base_version=0, kind="tumour", vertices=LEFT)
    r = post(client, job, base_version=1, kind="tumour", vertices=SMALL, replaces=replaces)
    assert r.status_code == 400 and message in r.json()["detail"], r.content
    assert version(job) == 1 and Region.objects.filter(slide=job.slide).count() == 1


def test_a_deleted_region_or_a_bad_outline_is_not_replaced(client, job, personas):
    old = post(client, job, base_version=0, kind="tumour", vertices=LEFT).json()["item"]
    crossing = [[0, 0], [1000, 1000], [1000, 0], [0, 1000]]
    r = post(client, job, base_version=1, kind="tumour", vertices=crossing, replaces=old["id"])
    assert r.status_code == 400 and "crosses itself" in r.json()["detail"]
    assert Region.objects.get(pk=old["id"]).is_active and version(job) == 1
    assert client.delete(f"/api/viewer/jobs/{job.pk}/regions/{old['id']}/?base_version=1").status_code == 200
    r = post(client, job, base_version=2, kind="tumour", vertices=SMALL, replaces=old["id"])
    assert r.status_code == 400 and "already deleted" in r.json()["detail"]
    assert not Region.objects.filter(slide=job.slide, deleted_at__isnull=True).exists()


def test_a_region_of_another_slide_is_not_replaced(client, job, personas):
    other = job_with_result(personas["case"], n=100, seed=2)
    theirs = post(client, other, base_version=0, kind="tumour", vertices=LEFT).json()["item"]
    r = post(client, job, base_version=0, kind="tumour", vertices=SMALL, replaces=theirs["id"])
    assert r.status_code == 400 and "does not exist on this slide" in r.json()["detail"]
    assert Region.objects.get(pk=theirs["id"]).is_active and not Region.objects.filter(slide=job.slide).exists()
