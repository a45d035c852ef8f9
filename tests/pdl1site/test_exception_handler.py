"""The one DRF exception handler (pdl1site.rest.exception_handler): service errors answer 4xx
from their class's `http_status`, with no per-view decorator."""

from rest_framework.exceptions import NotFound

from annotations.models import TransitionError
from annotations.services import AnnotationError, NotAllowed
from cases.results import NoResult
from pdl1site.rest import exception_handler
from viewer.errors import CorrectionConflict, ViewerInputError


def answer(exc):
    response = exception_handler(exc, {})
    return None if response is None else (response.status_code, response.data)


def test_service_errors_answer_their_status_and_details():
    assert answer(ViewerInputError("bad x")) == (400, {"detail": "bad x"})
    assert answer(NoResult("no store")) == (409, {"detail": "no store"})
    assert answer(CorrectionConflict("stale", version=7)) == (409, {"detail": "stale", "version": 7})
    status, body = answer(AnnotationError("rejected", ["point 3 outside"]))
    assert status == 400 and body["problems"] == ["point 3 outside"] and body["detail"].startswith("rejected")
    assert answer(NotAllowed("not yours")) == (403, {"detail": "not yours"})
    assert answer(TransitionError("already accepted")) == (409, {"detail": "already accepted"})


def test_other_exceptions_keep_drfs_answers():
    assert answer(NotFound())[0] == 404
    assert answer(ValueError("a bug")) is None  # not a service error: a 500, as before
