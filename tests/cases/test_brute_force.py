"""Brute-force protection (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for a user name,
the right password is refused too until the lockout ends; every failure is recorded."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

RIGHT = "pw-for-tests-123"  # tests.factories' password


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def login(client, password, username="pathologist"):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_login_page_locks_after_the_limit(personas):
    web = Client()
    for _ in range(2):
        assert login(web, "wrong").status_code == 200  # the form again, with its error
    locked = login(web, "wrong")
    assert locked.status_code == 429 and b"locked" in locked.content
    refused = login(Client(), RIGHT)  # another browser, the right password: still refused
    assert refused.status_code == 429 and "_auth_user_id" not in refused.client.session
    assert AccessFailureLog.objects.filter(username="pathologist").count() == 4
    assert login(Client(), RIGHT, username="outsider").status_code == 302  # other accounts unaffected


def test_lockout_ends_after_the_cool_off(personas, settings):
    web = Client()
    for _ in range(3):
        login(web, "wrong")
    assert login(web, RIGHT).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert login(web, RIGHT).status_code == 302


def test_token_endpoint_locks_after_the_limit(personas):
    def obtain(password):
        return APIClient().post("/api/auth/token/", {"username": "pathologist", "password": password}, format="json")

    assert obtain("wrong").status_code == 400
    assert obtain("wrong").status_code == 400
    assert obtain("wrong").status_code == 429
    refused = obtain(RIGHT)
    assert refused.status_code == 429 and "locked" in refused.json()["detail"] and "token" not in refused.json()
    assert AccessFailureLog.objects.filter(username="pathologist").count() == 4


def test_a_success_before_the_limit_resets_the_count(personas):
    web = Client()
    login(web, "wrong")
    login(web, "wrong")
    assert login(web, RIGHT).status_code == 302
    web.logout()
    login(web, "wrong")
    login(web, "wrong")
    assert login(web, RIGHT).status_code == 302


# --- report sign-off ---------------------------------------------------------------------------------

@pytest.fixture
def draft(personas, media_root):
    from cases.reports import do_create_draft
    from tests.viewer import job_with_result

    return do_create_draft(personas["case"], job_with_result(personas["case"], n=300, seed=3), personas["pathologist"])


def test_sign_off_api_locks_after_the_limit(personas, draft):
    from cases.choices import ReportStatus

    client = APIClient()
    client.force_login(personas["pathologist"])

    fingerprint = client.get(f"/api/reports/{draft.pk}/").json()["draft_fingerprint"]

    def sign(password):
        return client.post(f"/api/reports/{draft.pk}/sign/", {"password": password, "draft_fingerprint": fingerprint},
                           format="json")

    assert sign("wrong").status_code == 400
    assert sign("wrong").status_code == 400
    assert sign("wrong").status_code == 429  # the failure that reaches the limit
    refused = sign(RIGHT)
    assert refused.status_code == 429 and "locked" in refused.json()["detail"]
    draft.refresh_from_db()
    assert draft.status == ReportStatus.DRAFT
    assert AccessFailureLog.objects.filter(username="pathologist").count() == 4
    # The lockout is the account's: the login page refuses it too.
    assert login(Client(), RIGHT).status_code == 429


def test_sign_off_page_locks_after_the_limit(personas, draft):
    from cases.choices import ReportStatus

    web = Client()
    web.force_login(personas["pathologist"])
    url = f"/cases/{personas['case'].pk}/report/"
    from cases.reports import draft_fingerprint

    fingerprint = draft_fingerprint(draft)
    for _ in range(3):
        web.post(url, {"step": "sign", "password": "wrong", "draft_fingerprint": fingerprint})
    refused = web.post(url, {"step": "sign", "password": RIGHT, "draft_fingerprint": fingerprint})
    assert refused.status_code == 429 and b"locked" in refused.content
    draft.refresh_from_db()
    assert draft.status == ReportStatus.DRAFT


def test_sign_off_with_the_right_password_still_signs(personas, draft):
    client = APIClient()
    client.force_login(personas["pathologist"])
    fingerprint = client.get(f"/api/reports/{draft.pk}/").json()["draft_fingerprint"]
    client.post(f"/api/reports/{draft.pk}/sign/", {"password": "wrong", "draft_fingerprint": fingerprint},
                format="json")
    assert client.post(f"/api/reports/{draft.pk}/sign/", {"password": RIGHT, "draft_fingerprint": fingerprint},
                       format="json").status_code == 200


def test_rotating_browsers_does_not_dodge_the_account_lockout(personas):
    for agent in ("curl/8", "python-requests/2", "Mozilla/5.0"):
        Client(HTTP_USER_AGENT=agent).post("/accounts/login/", {"username": "pathologist", "password": "wrong"})
    assert login(Client(HTTP_USER_AGENT="yet-another"), RIGHT).status_code == 429
