"""A request body past DATA_UPLOAD_MAX_MEMORY_SIZE is the API's 413 with a JSON detail, on every API view:
DRF reads JSON bodies through request.body, whose size check Django raised as its HTML 400 page."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("who, url", [(None, "/api/auth/token/"), ("pathologist", "/api/patients/")])
def test_a_body_past_the_limit_is_a_413(personas, settings, who, url):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = Client(raise_request_exception=False)
    if who:
        client.force_login(personas[who])
    response = client.post(url, data='{"username": "x", "password": "' + "a" * 5000 + '"}',
                           content_type="application/json")
    assert response.status_code == 413 and "limit of 1000 bytes" in response.json()["detail"]
