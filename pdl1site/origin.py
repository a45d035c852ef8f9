"""Websocket origin check: the Origin's scheme, host and port must be the site's own.

channels' AllowedHostsOriginValidator compares the Origin's host name with ALLOWED_HOSTS only, so a
page on another port of the same host (any other service on the machine, or a user's own server on
127.0.0.1) could open websockets with the user's session cookie. Here the Origin must name the scheme
the browser connected with (https for a wss connection, directly or as the TLS proxy's
SECURE_PROXY_SSL_HEADER says, as Django's request.is_secure()), and the host *and port* it connected
to (its Host header, itself in ALLOWED_HOSTS), or be listed in CSRF_TRUSTED_ORIGINS: the rule Django
applies to unsafe HTTP requests.  Without the scheme, a plain-http page on the same host name (another
virtual host on port 80, or one injected before HSTS) could open the https site's websockets.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def is_secure(scope) -> bool:
    """Whether the browser's connection is TLS: wss, or the TLS proxy's header (SECURE_PROXY_SSL_HEADER)."""
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        name, expected = proxy
        value = _header(scope, name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1"))
        if value is not None:
            return value.split(",", 1)[0].strip() == expected
    return scope.get("scheme") == "wss"


def check_same_origin(origin: str | None, host: str | None, secure: bool = False) -> bool:
    if not origin or not host:
        return False
    try:
        parsed = urlsplit(origin.strip())
        origin_port = parsed.port
    except ValueError:
        return False
    if parsed.scheme not in DEFAULT_PORTS or not parsed.hostname:
        return False
    if f"{parsed.scheme}://{parsed.netloc}".lower() in {o.rstrip("/").lower() for o in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    if parsed.scheme != ("https" if secure else "http"):
        return False
    host_name, host_port = split_domain_port(host)
    if not host_name or not validate_host(host_name, settings.ALLOWED_HOSTS):
        return False
    default = DEFAULT_PORTS[parsed.scheme]
    try:
        host_port = int(host_port) if host_port else default
    except ValueError:
        return False
    return parsed.hostname.lower() == host_name.strip("[]") and (origin_port or default) == host_port


class SameOriginWebsocketValidator:
    """ASGI middleware for websocket connections: refuses (403 at the handshake) a foreign Origin."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if check_same_origin(_header(scope, b"origin"), _header(scope, b"host"), is_secure(scope)):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
