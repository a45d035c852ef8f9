"""Request middleware of the platform (order and reasons in settings.MIDDLEWARE)."""

import ipaddress

from auditlog.middleware import AuditlogMiddleware
from django.conf import settings

from pdl1site.conf import settings as module_settings  # the PDL1_ settings, with their defaults
from django.utils.functional import SimpleLazyObject


def valid_address(value) -> str | None:
    """`value` as an IP address the audit log's column takes (PostgreSQL: inet), or None.

    Accepts the `a.b.c.d:port` and `[v6]:port` forms some proxies write; an IPv6 zone (`%eth0`) is dropped."""
    text = str(value or "").strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(address).partition("%")[0]


def client_address(request) -> str | None:
    """The address of the client a request came from, for the audit trail.

    The connection's own address, unless settings.PDL1_TRUST_FORWARDED_FOR says the proxy in front
    appends each client's address to X-Forwarded-For: then the last entry, the one that proxy wrote.
    Everything left of it came from the client and is whatever the client chose to send."""
    if module_settings.PDL1_TRUST_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded.strip():
            return valid_address(forwarded.rsplit(",", 1)[-1])
    return valid_address(request.META.get("REMOTE_ADDR"))


def valid_port(value) -> int | None:
    try:
        port = int(str(value).strip())
    except ValueError:
        return None
    return port if 0 <= port <= 65535 else None


class AuditActorMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, with the actor read when an entry is written, not before the view.

    Why: the stock middleware reads request.user before the view runs, when DRF has not yet
    authenticated a token (or any other API credential): every token-authenticated change and PHI
    access was audited with actor=None. DRF sets request.user on the underlying Django request once
    it authenticates, so reading it lazily names whoever the view acted for, however they logged in.

    The address and port are read as client_address says, not from the first X-Forwarded-For entry
    the stock middleware trusts: that one the client writes itself (a forged address in the trail), and
    a value that is no address made every audited request fail on PostgreSQL."""

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: AuditlogMiddleware._get_actor(request))

    @staticmethod
    def _get_remote_addr(request):
        return None if settings.AUDITLOG_DISABLE_REMOTE_ADDR else client_address(request)

    @staticmethod
    def _get_remote_port(request):
        # The port the proxy says the client connected to, under the same trust; else the connection's.
        if module_settings.PDL1_TRUST_FORWARDED_FOR and request.META.get("HTTP_X_FORWARDED_PORT"):
            return valid_port(request.META["HTTP_X_FORWARDED_PORT"].rsplit(",", 1)[-1])
        return valid_port(request.META.get("REMOTE_PORT"))


class NoStoreMiddleware:
    """Dynamic responses are never stored by browsers or proxies (`Cache-Control: private, no-store`).

    Why: pages and API answers carry patient data, or depend on who asks; a shared workstation's
    browser cache must not keep them after logout. A view that chose its own policy keeps it
    (tiles: revalidated with their ETag; report downloads already no-store). Static files are
    answered by WhiteNoise before this runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            response["Cache-Control"] = "private, no-store"
        return response
