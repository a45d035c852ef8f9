"""The admin never shows an API token's key, and keeps accounts (deactivated, not deleted)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token

from cases.auth import do_issue_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(personas):
    admin = personas["admin"]
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client = Client()
    client.force_login(admin)
    return client


def test_token_list_shows_who_and_until_when_but_never_the_key(web, personas):
    key = do_issue_token(personas["pathologist"]).key
    page = web.get("/admin/authtoken/tokenproxy/")
    assert page.status_code == 200
    assert b"pathologist" in page.content and key.encode() not in page.content
    # The token's own page would be titled with its key (Token.__str__): there is none.
    for page in ("1/change/", f"{personas['pathologist'].pk}/change/", f"{key}/change/", f"{key}/history/",
                 f"{key}/delete/", "add/"):
        response = web.get(f"/admin/authtoken/tokenproxy/{page}", follow=True)
        assert response.redirect_chain or response.status_code == 403, page
        assert key.encode() not in response.content, page


def test_admin_revokes_a_users_token_from_the_user_list(web, personas):
    victim = personas["pathologist"]
    do_issue_token(victim)
    response = web.post("/admin/auth/user/", {"action": "revoke_api_tokens", "_selected_action": [victim.pk]})
    assert response.status_code == 302
    assert not Token.objects.filter(user=victim).exists()


def test_deleting_an_account_in_the_admin_is_refused_with_a_reason(web, personas):
    annotator = personas["annotator"]
    response = web.post(f"/admin/auth/user/{annotator.pk}/delete/", {"post": "yes"}, follow=True)
    assert get_user_model().objects.filter(pk=annotator.pk).exists()
    assert b"Accounts are not deleted" in response.content
    bulk = web.post("/admin/auth/user/", {"action": "delete_selected", "_selected_action": [annotator.pk],
                                          "post": "yes"})
    assert get_user_model().objects.filter(pk=annotator.pk).exists() and bulk.status_code == 302
