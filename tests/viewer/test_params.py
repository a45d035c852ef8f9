"""The viewer's input parsed by DRF serializers (viewer.params) and region outlines checked by
shapely (viewer.geometry): the same clear 400s, stricter where the old parsing let bad input through,
and the API schema that documents them."""

import pytest

from tests.viewer import client_for, job_with_result
from viewer import geometry
from viewer.models import Correction, Region

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(personas, media_root):
    return job_with_result(personas["case"], n=300, seed=21)


@pytest.mark.parametrize("tail, body", [
    ("regions/", {"kind": "tumour", "vertices": [[0, 0], [100, 0], [100, 100]]}),
    ("corrections/", {"op": "add", "x": 10, "y": 10, "label": "positive"}),
])
def test_a_fractional_base_version_is_refused_not_truncated(personas, job, tail, body):
    # int(0.7) was 0, the current version: the save went through on a version nobody loaded.
    r = client_for(personas["pathologist"]).post(f"/api/viewer/jobs/{job.pk}/{tail}", {**body, "base_version": 0.7},
                                                 content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"] == "base_version must be an integer"
    assert not Region.objects.exists() and not Correction.objects.exists()


@pytest.mark.parametrize("params, message", [
    ({"x0": 0, "y0": 0, "x1": 10, "y1": 10, "max": "0"}, "max must be between 1 and 100000"),
    ({"x0": "inf", "y0": 0, "x1": 10, "y1": 10}, "x0 must be finite"),
    ({"x0": 0, "y0": 0, "x1": 10, "y1": 10, "layers": ","}, "layers must be a comma-separated list of positive, negative"),
])
def test_viewport_parameters(personas, job, params, message):
    r = client_for(personas["pathologist"]).get(f"/api/viewer/jobs/{job.pk}/points/", params)
    assert r.status_code == 400 and r.json()["detail"] == message


def test_a_non_finite_added_point_names_the_problem(personas, job):
    r = client_for(personas["pathologist"]).post(
        f"/api/viewer/jobs/{job.pk}/corrections/", '{"base_version": 0, "op": "add", "x": "nan", "y": 1, '
        '"label": "positive"}', content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"] == "x must be finite"


def test_a_list_body_is_a_clear_400(personas, job):
    r = client_for(personas["pathologist"]).post(f"/api/viewer/jobs/{job.pk}/regions/", [1, 2],
                                                 content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"] == "expected a JSON object"


def test_the_schema_documents_the_viewer_inputs(personas):
    schema = client_for(personas["pathologist"]).get("/api/schema/?format=json").json()
    region = schema["components"]["schemas"]["RegionInput"]
    assert region["required"] == ["base_version", "kind", "vertices"]
    assert region["properties"]["vertices"]["minItems"] == 3
    points = {p["name"]: p for p in schema["paths"]["/api/viewer/jobs/{id}/points/"]["get"]["parameters"]}
    assert points["x0"]["required"] is True and points["x0"]["schema"]["type"] == "number"
    assert points["max"]["schema"]["maximum"] == 100000
    hotspots = {p["name"]: p for p in schema["paths"]["/api/viewer/jobs/{id}/hotspots/"]["get"]["parameters"]}
    assert hotspots["field_mm2"]["schema"]["minimum"] == 0.01 and hotspots["field_mm2"]["schema"]["maximum"] == 100


@pytest.mark.parametrize("vertices, problem", [
    ([[0, 0], [10, 0], [20, 0]], "no area"),
    ([[0, 0], [100, 100], [100, 0], [0, 100]], "crosses itself"),
    ([[0, 0], [100, 0], [100, 100], [50, 0.0], [0, 100]], "crosses itself"),  # a vertex on another edge
    ([[0, 0], [100, 0], [100, 0.001]], "no area"),
    ([[0, 0], [100, 0], [100, 100], [0, 100]], None),
])
def test_outline_problems(vertices, problem):
    found = geometry.outline_problem(vertices)
    assert (found is None) if problem is None else (problem in found)


def test_region_mask_and_area():
    regions = geometry.Regions(include=[geometry.polygon([[0, 0], [100, 0], [100, 100], [0, 100]])],
                               exclude=[geometry.polygon([[50, 50], [100, 50], [100, 100], [50, 100]])])
    xy = [[10, 10], [100, 10], [75, 75], [50, 20], [150, 10], [60, 50]]
    assert regions.mask(xy).tolist() == [True, True, False, True, False, False]  # outlines belong to the polygon
    assert geometry.area_mm2([[0, 0], [2000, 0], [2000, 2000], [0, 2000]], 0.5) == pytest.approx(1.0)
    assert geometry.area_mm2([[0, 0], [1, 0], [0, 1]], None) is None
