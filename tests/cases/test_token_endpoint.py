"""POST /api/auth/token/: bad input is a 4xx like everywhere else in the API."""

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import parsers

pytestmark = pytest.mark.django_db


def post_token(body: str):
    return Client(raise_request_exception=False).post("/api/auth/token/", data=body, content_type="application/json")


def test_deeply_nested_json_is_a_400():
    response = post_token("[" * 100_000 + "]" * 100_000)
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


def api_views(patterns=None):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from api_views(entry.url_patterns)
        elif isinstance(entry, URLPattern) and hasattr(entry.callback, "cls"):
            yield entry.callback.cls


def test_no_api_view_parses_json_with_the_unbounded_stock_parser():
    views = list(api_views())
    assert any(view.__name__ == "ObtainExpiringAuthToken" for view in views)
    stock = [view.__name__ for view in views if parsers.JSONParser in view.parser_classes]
    assert stock == []
