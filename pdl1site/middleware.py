"""Request middleware of the platform (order and reasons in settings.MIDDLEWARE)."""

from auditlog.middleware import AuditlogMiddleware
from django.utils.functional import SimpleLazyObject


class AuditActorMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, with the actor read when an entry is written, not before the view.

    Why: the stock middleware reads request.user before the view runs, when DRF has not yet
    authenticated a token (or any other API credential): every token-authenticated change and PHI
    access was audited with actor=None. DRF sets request.user on the underlying Django request once
    it authenticates, so reading it lazily names whoever the view acted for, however they logged in."""

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: AuditlogMiddleware._get_actor(request))


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
