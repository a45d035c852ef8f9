"""Websocket origin check: the Origin's scheme, host and port must be the site's own.

channels' AllowedHostsOriginValidator compares the Origin's host name with ALLOWED_HOSTS only, so a
page on another port of the same host (any other service on the machine, or a user's own server on
127.0.0.1) could open websockets with the user's session cookie. Here the Origin must name the host
*and port* the browser connected to (its Host header, itself in ALLOWED_HOSTS), or be listed in
CSRF_TRUSTED_ORIGINS, the same rule Django applies to unsafe HTTP requests.
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


def check_same_origin(origin: str | None, host: str | None) -> bool:
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
        if check_same_origin(_header(scope, b"origin"), _header(scope, b"host")):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
