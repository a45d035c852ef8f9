"""After login each role lands on its own home; 403 and 404 pages are styled and say what to do."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


def login(username):
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": PASSWORD}, follow=True)
    return client, response


@pytest.mark.parametrize("who, home, marker", [
    ("annotator", "/annotate/sessions/", "annotation sessions"),
    ("clinician", "/reports/", "Reports"),
    ("pathologist", "/cases/", "Cases"),
    ("admin", "/cases/", "Cases"),
])
def test_each_role_lands_on_its_own_home(personas, who, home, marker, settings):
    settings.DEBUG = False
    _, response = login(who)
    assert response.status_code == 200, response.redirect_chain
    assert response.redirect_chain[-1][0] == home
    assert marker.lower() in response.content.decode().lower()


def test_a_user_without_role_gets_a_403_that_says_what_to_do(personas, settings):
    settings.DEBUG = False
    _, response = login("norole")
    assert response.status_code == 403
    body = response.content.decode()
    assert 'id="error-403"' in body and "ask an administrator" in body
    assert 'class="topbar"' in body  # the site's own page, not Django's bare one


def test_403_page_is_styled_and_points_home(personas, settings):
    settings.DEBUG = False
    client, _ = login("annotator")
    response = client.get("/cases/")
    assert response.status_code == 403
    body = response.content.decode()
    assert 'id="error-403"' in body and "Your role does not give access" in body
    assert 'href="/">Go to your home page' in body and "/static/css/site.css" in body


def test_404_page_is_styled_and_explains_departments(personas, settings):
    settings.DEBUG = False
    client, _ = login("outsider")
    response = client.get(f"/cases/{personas['case'].pk}/")  # another department's case
    assert response.status_code == 404
    body = response.content.decode()
    assert 'id="error-404"' in body and "department" in body and "Go to your home page" in body
    anonymous = Client().get("/no-such-page/")
    assert anonymous.status_code == 404 and "Log in" in anonymous.content.decode()
