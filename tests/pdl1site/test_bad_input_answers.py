"""Bad input gets a 4xx with a message, never a server error (issue 14, item 11)."""

import re

import pytest
from django.urls import get_resolver
from rest_framework.test import APIClient

from tests.annotations import project_with_field, session_of
from tests.claimed_images import tiff_claiming
from tests.viewer import SlideFactory, client_for, job_with_result

pytestmark = pytest.mark.django_db

HUGE = 10 ** 400


def api_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_integer_too_large_for_a_float_is_a_400(personas):
    slide = SlideFactory(case=personas["case"], mpp_x=0.5, mpp_y=0.5)
    body = '{"slide": %d, "detector": "classic", "parameters": {"tile_px": %d}}' % (slide.pk, HUGE)
    r = api_for(personas["pathologist"]).post("/api/jobs/", body, content_type="application/json")
    assert r.status_code == 400 and "tile_px" in r.json()["detail"]


@pytest.mark.parametrize("tail", ["regions/", "corrections/"])
def test_an_infinite_base_version_is_a_400(personas, media_root, tail):
    job = job_with_result(personas["case"], n=100, seed=1)
    body = '{"base_version": 1e400, "kind": "tumour", "op": "add", "x": 10, "y": 10, "label": "positive", ' \
           '"vertices": [[0, 0], [100, 0], [100, 100]]}'
    r = client_for(personas["pathologist"]).post(f"/api/viewer/jobs/{job.pk}/{tail}", body,
                                                 content_type="application/json")
    assert r.status_code == 400 and "base_version" in r.json()["detail"]


def test_an_infinite_import_version_is_a_400(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    body = '{"version": 1e400, "fmt": "geojson", "content": {"type": "FeatureCollection", "features": []}}'
    r = client_for(personas["annotator"]).post(f"/api/annotation/sessions/{session.pk}/import/", body,
                                               content_type="application/json")
    assert r.status_code == 400 and "version" in str(r.json())


def test_deeply_nested_geojson_is_a_400(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    nested = "[" * 100_000 + "]" * 100_000
    r = client_for(personas["annotator"]).post(f"/api/annotation/sessions/{session.pk}/import/",
                                               {"version": 0, "fmt": "geojson", "content": nested})
    assert r.status_code == 400 and "nested" in str(r.json())
    # the same document as a JSON request body
    r = client_for(personas["annotator"]).post(f"/api/annotation/sessions/{session.pk}/import/",
                                               '{"version": 0, "content": ' + nested + "}",
                                               content_type="application/json")
    assert r.status_code == 400


@pytest.mark.parametrize("tail", ["corrections/", "regions/"])
def test_options_on_viewer_actions_is_not_a_server_error(personas, tail):
    client = client_for(personas["pathologist"])
    for pk in (0, job_with_result(personas["case"], n=10, seed=2).pk):
        r = client.options(f"/api/viewer/jobs/{pk}/{tail}")
        assert r.status_code == 200, (pk, r.status_code)  # OPTIONS describes the route, reads no job


def test_a_tiff_claiming_a_huge_single_level_is_a_400(personas, tmp_path):
    path = tiff_claiming(tmp_path / "claims-110000.tif", 110_000, 110_000)
    with open(path, "rb") as fh:
        r = api_for(personas["pathologist"]).post("/api/slides/", {"files": fh}, format="multipart")
    assert r.status_code == 400, r.content[:300]
    assert "pixels" in r.json()["detail"]


def api_paths():
    """Every /api/ URL of the URL conf, each path parameter filled with 0."""
    routes = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, route)
            else:
                routes.append(route)

    walk(get_resolver().url_patterns)
    paths = set()
    for route in routes:
        route = re.sub(r"\(\?P<format>[^)]*\)", "", route.replace("^", "").replace("$", ""))
        route = re.sub(r"\(\?P<[^>]+>[^)]*\)|<[^>]+>", "0", route).replace("\\.", ".").replace("/?", "/")
        if route.startswith("api/") and not re.search(r"[()\[\]]", route):
            paths.add("/" + route)
    return sorted(paths)


def test_options_on_every_api_url_is_never_a_server_error(personas):
    paths = api_paths()
    assert "/api/viewer/jobs/0/corrections/" in paths and len(paths) > 30
    client = client_for(personas["pathologist"])
    errors = [(path, status) for path in paths if (status := client.options(path).status_code) >= 500]
    assert errors == []
