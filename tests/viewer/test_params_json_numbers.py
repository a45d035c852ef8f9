"""Coordinates in request bodies are JSON numbers, and a number no float holds is a 400, never a 500: a
region's vertex given as a 400-digit integer overflowed float() (500); an added point's x, y accepted strings
("12.5") while vertices refused them."""

import pytest

from tests.viewer import client_for, job_with_result
from viewer.models import Correction, Region

pytestmark = pytest.mark.django_db
BIG = "1" + "0" * 400


@pytest.fixture
def job(personas, media_root):
    return job_with_result(personas["case"], n=300, seed=11)


@pytest.fixture
def client(personas):
    client = client_for(personas["pathologist"])
    client.raise_request_exception = False
    return client


def raw(client, job, tail, body):
    return client.post(f"/api/viewer/jobs/{job.pk}/{tail}", body, content_type="application/json")


@pytest.mark.parametrize("vertices", [f"[[0,0],[10,0],[{BIG},10]]", f"[[0,0],[10,0],[10,-{BIG}]]"])
def test_a_vertex_too_large_for_a_float_is_refused(client, job, vertices):
    r = raw(client, job, "regions/", '{"base_version": 0, "kind": "tumour", "vertices": ' + vertices + "}")
    assert r.status_code == 400 and r.json()["detail"] == "vertex 2 must be finite", r.content
    assert not Region.objects.exists()


@pytest.mark.parametrize("x, y, message", [
    ('"12.5"', "10", "x must be a number (level-0 px)"), ("12.5", '" 10 "', "y must be a number (level-0 px)"),
    (BIG, "10", "x must be finite"), ("12.5", "[10]", "y must be a number (level-0 px)")])
def test_an_added_points_coordinates_are_json_numbers(client, job, x, y, message):
    r = raw(client, job, "corrections/",
            '{"base_version": 0, "op": "add", "x": ' + x + ', "y": ' + y + ', "label": "positive"}')
    assert r.status_code == 400 and r.json()["detail"] == message, r.content
    assert not Correction.objects.exists()


def test_region_vertices_refuse_strings_as_before(client, job):
    r = raw(client, job, "regions/", '{"base_version": 0, "kind": "tumour", "vertices": [[0,0],[10,0],["10",10]]}')
    assert r.status_code == 400 and "vertex 2 must be [x, y]" in r.json()["detail"]


def test_query_parameters_stay_strings(client, job):
    """A viewport's x0..y1 come as query strings: still read as numbers."""
    r = client.get(f"/api/viewer/jobs/{job.pk}/points/?x0=0&y0=0&x1=100.5&y1=100")
    assert r.status_code == 200
