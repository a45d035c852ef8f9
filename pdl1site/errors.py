"""The answer to an unhandled error: 503 with a plain message while the database is unreachable.

During a PostgreSQL restart every request used to get Django's bare "500 Server Error" (the soak,
bench/RESULTS-soak.md). A database that is down is a temporary fault the caller can act on (try
again), not a defect: it gets 503 with Retry-After. The failure often surfaces as a follow-on error
(the session middleware raises AttributeError after its load failed), so the whole exception chain
is searched.
"""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

DATABASE_UNAVAILABLE = ("The database is unavailable for a moment (restart or failover). Try again in "
                        "a minute; if a save was in progress, reload and check it before repeating it.")
RETRY_AFTER_SECONDS = 30


def _database_down(exc: BaseException | None) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (OperationalError, InterfaceError)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _wants_json(request) -> bool:
    return "/api/" in request.path or "application/json" in request.headers.get("Accept", "")


def server_error(request, *args, **kwargs):
    """handler500: 503 for an unreachable database, else Django's plain 500 (no details leak)."""
    if _database_down(sys.exc_info()[1]):
        status, detail = 503, DATABASE_UNAVAILABLE
    else:
        status, detail = 500, "Server error. It has been logged; try again or tell the administrator."
    if _wants_json(request):
        response = JsonResponse({"detail": detail}, status=status)
    else:
        response = HttpResponse(detail, status=status, content_type="text/plain; charset=utf-8")
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response
