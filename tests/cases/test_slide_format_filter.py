"""The slide lists' `format` filter (the file's format) works: DRF read `?format=` as the answer's format
and answered 404 to any value it cannot render (pdl1site.rest.ContentNegotiation)."""

import pytest
from rest_framework.test import APIClient

from cases.services import IngestSource, do_ingest_slide
from tests.conftest import shared_slide

pytestmark = pytest.mark.django_db
LISTS = [("annotator", "/api/pseudo-slides/"), ("pathologist", "/api/slides/")]


@pytest.fixture
def slide(personas):
    return do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))],
                           case=personas["case"]).slide


def client_for(user):
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize("who, url", LISTS)
def test_the_format_filter_filters(personas, slide, who, url):
    client = client_for(personas[who])
    found = client.get(url, {"format": slide.format})
    assert found.status_code == 200 and found.json()["count"] == 1
    other = client.get(url, {"format": "dicom"})
    assert other.status_code == 200 and other.json()["count"] == 0


@pytest.mark.parametrize("who, url", LISTS)
def test_format_json_still_chooses_json_and_filters_nothing(personas, slide, who, url):
    response = client_for(personas[who]).get(url, {"format": "json"})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json()["count"] == 1


def test_a_format_no_view_renders_is_left_to_the_view(personas):
    response = client_for(personas["pathologist"]).get("/api/patients/", {"format": "xml"})
    assert response.status_code == 200 and response.json()["count"] == 1


def test_the_schema_still_answers_json_for_format_json(personas):
    response = client_for(personas["pathologist"]).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200 and "openapi" in response.json()
    suffix = client_for(personas["pathologist"]).get("/api/patients.xml")
    assert suffix.status_code == 404  # a URL suffix still names a format the view must render
