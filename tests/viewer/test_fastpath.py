"""The tile fast path (viewer/fastpath.py): repeat tiles of a granted session skip Django, with the
same bytes and headers; everything it cannot vouch for still goes to Django's access checks."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.test import Client

from pdl1site.asgi import django_asgi_app
from tests.workers.conftest import synthetic_slide, synthetic_slide_file  # noqa: F401  fixtures
from viewer import fastpath, tiles

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh():
    fastpath.grants.clear()
    tiles.tile_cache.clear()
    yield
    fastpath.grants.clear()
    tiles.tile_cache.clear()


class Counting:
    """Django's ASGI app, counting the requests that reach it."""

    def __init__(self):
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        return await django_asgi_app(scope, receive, send)


def session_cookie(user):
    web = Client()
    web.force_login(user)
    return web, web.cookies["sessionid"].value


def get(app, path, cookie=None, extra=()):
    return async_to_sync(_get)(app, path, cookie, extra)


async def _get(app, path, cookie=None, extra=()):
    headers = [(b"host", b"localhost"), *extra]
    if cookie is not None:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    response = await HttpCommunicator(app, "GET", path, headers=headers).get_response(timeout=30)
    response["headers"] = {k.decode().lower(): v.decode() for k, v in response["headers"]}
    return response


def tile_path(slide, level=9, col=0, row=0, pseudo=False):
    ref = f"pseudo/{slide.pseudo_id}" if pseudo else f"slides/{slide.pk}"
    return f"/viewer/{ref}_files/{level}/{col}_{row}.jpeg"


def test_a_repeat_tile_is_answered_without_django_with_the_same_bytes_and_headers(personas, synthetic_slide):
    django = Counting()
    app = fastpath.TileFastPath(django)
    _, cookie = session_cookie(personas["pathologist"])
    first = get(app, tile_path(synthetic_slide), cookie)
    assert first["status"] == 200 and django.calls == 1
    again = get(app, tile_path(synthetic_slide), cookie)
    assert django.calls == 1, "served by the fast path"
    assert again["status"] == 200 and again["body"] == first["body"]
    for name in ("content-type", "etag", "cache-control", "x-content-type-options", "x-frame-options", "vary",
                 "content-length"):
        assert again["headers"].get(name) == first["headers"].get(name), name
    # a conditional request with the ETag: 304 without Django
    etag = first["headers"]["etag"].encode()
    not_modified = get(app, tile_path(synthetic_slide), cookie, [(b"if-none-match", etag)])
    assert not_modified["status"] == 304 and not_modified["headers"]["etag"] == etag.decode() and django.calls == 1
    # a tile not rendered yet goes to Django, which renders and caches it
    other = get(app, tile_path(synthetic_slide, col=1), cookie)
    assert other["status"] == 200 and django.calls == 2
    get(app, tile_path(synthetic_slide, col=1), cookie)
    assert django.calls == 2


def test_other_sessions_slides_and_logged_out_sessions_still_go_through_django(personas, synthetic_slide):
    django = Counting()
    app = fastpath.TileFastPath(django)
    web, cookie = session_cookie(personas["pathologist"])
    assert (get(app, tile_path(synthetic_slide), cookie))["status"] == 200
    calls = django.calls
    # a user without access, with the tile in the cache: Django answers 404
    _, outsider = session_cookie(personas["outsider"])
    assert (get(app, tile_path(synthetic_slide), outsider))["status"] == 404
    # no cookie, a forged cookie, a malformed cookie header: Django (login redirect)
    assert (get(app, tile_path(synthetic_slide)))["status"] == 302
    assert (get(app, tile_path(synthetic_slide), "forged-session-key"))["status"] == 302
    assert (get(app, tile_path(synthetic_slide), extra=[(b"cookie", b'sessionid="unterminated')]))["status"] == 302
    # the granted session, on the pseudonymous route of the same slide: not granted there, Django decides
    assert (get(app, tile_path(synthetic_slide, pseudo=True), cookie))["status"] in (200, 403, 404)
    assert django.calls == calls + 5
    # logging out drops the grant at once
    web.post("/accounts/logout/")
    assert (get(app, tile_path(synthetic_slide), cookie))["status"] == 302


def test_an_expired_grant_asks_django_again(personas, synthetic_slide, settings, monkeypatch):
    django = Counting()
    app = fastpath.TileFastPath(django)
    _, cookie = session_cookie(personas["pathologist"])
    get(app, tile_path(synthetic_slide), cookie)
    now = fastpath.time.monotonic()
    monkeypatch.setattr(fastpath.time, "monotonic", lambda: now + settings.PDL1_VIEWER_TILE_GRANT_SECONDS + 1)
    get(app, tile_path(synthetic_slide), cookie)
    assert django.calls == 2
    settings.PDL1_VIEWER_TILE_GRANT_SECONDS = 0  # off: every tile through Django
    get(app, tile_path(synthetic_slide), cookie)
    get(app, tile_path(synthetic_slide), cookie)
    assert django.calls == 4


def test_annotators_pseudonymous_tiles_use_the_fast_path_too(personas, synthetic_slide):
    django = Counting()
    app = fastpath.TileFastPath(django)
    _, cookie = session_cookie(personas["annotator"])
    first = get(app, tile_path(synthetic_slide, pseudo=True), cookie)
    assert first["status"] == 200
    again = get(app, tile_path(synthetic_slide, pseudo=True), cookie)
    assert again["body"] == first["body"] and django.calls == 1
    # the annotator may not use the identified route, granted or not
    assert (get(app, tile_path(synthetic_slide), cookie))["status"] == 403 and django.calls == 2


def test_the_site_serves_http_through_the_fast_path():
    from pdl1site.asgi import application

    assert isinstance(application.application_mapping["http"], fastpath.TileFastPath)


def test_the_server_process_tunes_its_garbage_collector_only_when_configured():
    import gc

    from pdl1site.asgi import tune_gc

    before = gc.get_threshold()
    assert tune_gc(0) is False and gc.get_threshold() == before
    try:
        assert tune_gc(40_000) is True
        assert gc.get_threshold() == (40_000, 50, 100) and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_huge_tile_address_goes_to_django_and_gets_a_404(personas, synthetic_slide):
    """A level of 5,000 digits made int() raise inside the fast path (a 500 under daphne)."""
    django = Counting()
    app = fastpath.TileFastPath(django)
    _, cookie = session_cookie(personas["pathologist"])
    assert get(app, tile_path(synthetic_slide), cookie)["status"] == 200  # a grant for this session
    huge = get(app, f"/viewer/slides/{synthetic_slide.pk}_files/{'9' * 5000}/0_0.jpeg", cookie)
    assert huge["status"] == 404 and django.calls == 2
