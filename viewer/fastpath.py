"""Tile fast path: repeat DeepZoom tile requests answered in daphne's event loop.

Why: an open viewer fetches tens of tiles a second per user. Through Django each tile costs the
middleware stack, a thread hop for the sync view and the session, role and slide-access queries
(~5-7 ms), so one process serves ~150 tiles/s and 50 busy viewers queue for half a second.
Almost every one of those requests repeats a decision made a moment ago: the same session asking
for tiles of the same slide, most of them already encoded in the tile cache.

How: Django's tile view (viewer.views) stays the only code that decides access. Each time it
serves a tile it records a *grant*: this session key may read tiles of this slide route, from this
file, for GRANT_SECONDS (settings.PDL1_VIEWER_TILE_GRANT_SECONDS, 0 turns the fast path off).
``TileFastPath`` (ASGI middleware in front of Django, pdl1site/asgi.py) answers a tile GET itself
only when the request's session cookie holds a live grant for that slide route AND the tile's
bytes are already in viewer.tiles.tile_cache; with the same ETag, 304 and Cache-Control as the view
and the headers Django's middleware put on the last tile it served. Everything else - no cookie or
grant, an expired grant, a tile not rendered yet, any other path or method - goes to Django
unchanged. Logging out drops the session's grants at once; other changes (role, department, a
deleted slide) take effect within GRANT_SECONDS.

Grants live in the memory of one server process: with several daphne processes each learns its own.
"""

from __future__ import annotations

import re
import threading
import time
from http.cookies import SimpleCookie

from pdl1site.conf import settings

TILE_PATH = re.compile(
    # At most 9 digits each (Django's own <int:> answers the rest with a 404; int() of 4,300 digits raises).
    r"^/viewer/(?P<kind>slides|pseudo)/(?P<ref>\d{1,18}|[0-9a-fA-F-]{36})_files/(?P<level>\d{1,9})/(?P<col>\d{1,9})_"
    r"(?P<row>\d{1,9})\.jpeg$")
# Headers that belong to one response, never copied into the fast path's template.
_PER_RESPONSE = {b"etag", b"content-length", b"set-cookie", b"date", b"content-type", b"cache-control"}
MAX_GRANTS = 50_000
# The browser may keep a tile but must ask again before each reuse (a 304 with the ETag, answered
# here): a tile is never shown from cache once its viewer has lost access or logged out.
TILE_CACHE_CONTROL = b"private, no-cache"


def grant_seconds() -> float:
    return float(settings.PDL1_VIEWER_TILE_GRANT_SECONDS)


class TileGrants:
    """(session key, kind, slide ref) -> (expiry, slide path, ETag prefix). Thread-safe."""

    def __init__(self):
        self._grants: dict[tuple[str, str, str], tuple[float, str, str]] = {}
        self._lock = threading.Lock()
        self.headers: list[tuple[bytes, bytes]] | None = None  # Django's headers of the last tile served

    def remember(self, session_key: str | None, kind: str, ref, path: str, etag_prefix: str) -> None:
        ttl = grant_seconds()
        if not session_key or ttl <= 0:
            return
        with self._lock:
            if len(self._grants) >= MAX_GRANTS:
                self._prune()
            self._grants[(session_key, kind, str(ref).lower())] = (time.monotonic() + ttl, path, etag_prefix)

    def lookup(self, session_key: str, kind: str, ref: str) -> tuple[str, str] | None:
        grant = self._grants.get((session_key, kind, ref.lower()))
        if grant is None or grant[0] < time.monotonic():
            return None
        return grant[1], grant[2]

    def forget_session(self, session_key: str | None) -> None:
        if not session_key:
            return
        with self._lock:
            for key in [k for k in self._grants if k[0] == session_key]:
                del self._grants[key]

    def clear(self) -> None:
        with self._lock:
            self._grants.clear()
            self.headers = None

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, g in self._grants.items() if g[0] < now]:
            del self._grants[key]
        if len(self._grants) >= MAX_GRANTS:  # all live: drop the oldest half rather than grow
            for key in list(self._grants)[: MAX_GRANTS // 2]:
                del self._grants[key]

    def __len__(self) -> int:
        return len(self._grants)


grants = TileGrants()


def _session_key(headers) -> str | None:
    name = settings.SESSION_COOKIE_NAME
    for key, value in headers:
        if key == b"cookie":
            try:
                morsel = SimpleCookie(value.decode("latin-1")).get(name)
            except Exception:  # a malformed cookie header: let Django answer it
                return None
            if morsel is not None:
                return morsel.value
    return None


def _header(headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class TileFastPath:
    """ASGI middleware: cached tiles with a live grant are answered here, everything else by ``app``."""

    def __init__(self, app, grant_store: TileGrants = grants):
        self.app = app
        self.grants = grant_store

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET":
            match = TILE_PATH.match(scope["path"])
            if match is not None:
                if await self._answer(scope, match, send):
                    return
                return await self.app(scope, receive, self._learning(send))
        return await self.app(scope, receive, send)

    async def _answer(self, scope, match, send) -> bool:
        template = self.grants.headers
        if template is None or grant_seconds() <= 0:
            return False
        session_key = _session_key(scope["headers"])
        if not session_key:
            return False
        grant = self.grants.lookup(session_key, match["kind"], match["ref"])
        if grant is None:
            return False
        from viewer import tiles

        path, etag_prefix = grant
        level, col, row = int(match["level"]), int(match["col"]), int(match["row"])
        etag = f'"{etag_prefix}-{level}-{col}-{row}"'.encode()
        inm = _header(scope["headers"], b"if-none-match")
        if inm is not None and _etag_matches(inm.decode("latin-1"), etag.decode()):
            await send({"type": "http.response.start", "status": 304,
                        "headers": [*template, (b"etag", etag), (b"cache-control", TILE_CACHE_CONTROL)]})
            await send({"type": "http.response.body", "body": b""})
            return True
        data = tiles.cached_tile(path, level, col, row)
        if data is None:
            return False
        await send({"type": "http.response.start", "status": 200, "headers": [
            *template, (b"content-type", b"image/jpeg"), (b"content-length", str(len(data)).encode()),
            (b"etag", etag), (b"cache-control", TILE_CACHE_CONTROL)]})
        await send({"type": "http.response.body", "body": data})
        return True

    def _learning(self, send):
        """Keep the headers Django's middleware put on a served tile, for the fast path's answers."""

        async def wrapped(message):
            if message["type"] == "http.response.start" and message.get("status") == 200:
                headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers") or []]
                if _header(headers, b"content-type") == b"image/jpeg":
                    self.grants.headers = [(k, v) for k, v in headers if k not in _PER_RESPONSE]
            await send(message)

        return wrapped


def _etag_matches(if_none_match: str, etag: str) -> bool:
    from viewer.etags import etag_matches

    return etag_matches(if_none_match, etag)
