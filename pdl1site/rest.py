"""DRF pieces every API view uses (settings.REST_FRAMEWORK): bad input is a 4xx, never a 500."""

import logging

import django_filters
import django_filters.rest_framework
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, models
from rest_framework import metadata, negotiation, parsers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.settings import api_settings


log = logging.getLogger(__name__)


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than the configured limit."
    default_code = "body_too_large"


class SavedConcurrently(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = ("This change conflicts with another saved at the same moment (for example the same number "
                      "registered twice): reload and try again.")
    default_code = "saved_concurrently"


class JSONParser(parsers.JSONParser):
    """The standard JSON parser, but bounded: a body past DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 before
    it is read (DRF as installed reads it through request.body, whose own check exception_handler
    answers 413; this one covers a parser given the stream), and a document nested too deeply
    for the decoder (100 000 '[') is a 400 like any other malformed JSON, not a RecursionError."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            raise BodyTooLarge(f"The JSON body ({length} bytes) is larger than the limit of {limit} bytes.")
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply") from None


class ContentNegotiation(negotiation.DefaultContentNegotiation):
    """`?format=` chooses the answer's format only where it names one the view renders (json; the
    corrections export's csv and geojson; the schema's json); any other value is left to the view.

    Why: DRF answered 404 to every other value, so the slide lists' documented `format` filter (the
    file's format, e.g. `?format=aperio`) could not be used. A URL suffix (`.json`) still must match."""

    def select_renderer(self, request, renderers, format_suffix=None):
        self.from_suffix = bool(format_suffix)
        return super().select_renderer(request, renderers, format_suffix)

    def filter_renderers(self, renderers, format):
        if self.from_suffix:
            return super().filter_renderers(renderers, format)
        return [renderer for renderer in renderers if renderer.format == format] or renderers


def format_was_the_output_format(request) -> bool:
    """Whether the request's `?format=` chose its answer's format (ContentNegotiation), not a filter value."""
    param = api_settings.URL_FORMAT_OVERRIDE
    renderer = getattr(request, "accepted_renderer", None)
    value = request.query_params.get(param) if param else None
    return value is not None and renderer is not None and value == renderer.format


class Metadata(metadata.SimpleMetadata):
    """OPTIONS: describes a view's POST/PUT fields only where the view has a serializer to describe
    them with; a viewset whose actions parse their own input (viewer.api) has none."""

    def determine_actions(self, request, view):
        try:
            view.get_serializer_class()
        except (AssertionError, AttributeError):
            return {}
        return super().determine_actions(request, view)


def exception_handler(exc, context):
    """DRF's handler, plus the apps' service errors: an exception whose class declares `http_status`
    answers {"detail": str(exc), **exc.http_extra()} with that status (viewer.errors,
    annotations.services, ...), so no view repeats the mapping. The apps stay unknown here."""
    # Imported here: rest_framework.views reads REST_FRAMEWORK, which names this module's parser.
    from rest_framework import views
    from rest_framework.response import Response

    if isinstance(exc, IntegrityError):
        # A uniqueness the checks before the save could not see: two requests registering one MRN or
        # accession at the same moment, the second meeting the database's constraint. Not a 500, and
        # nothing about the record it collided with (an MRN of another department stays unconfirmed).
        log.warning("integrity error answered 409: %s", exc)
        exc = SavedConcurrently()
    if isinstance(exc, RequestDataTooBig):
        # DRF reads a JSON or form body through request.body, whose size check (Django's) comes before
        # JSONParser's own: without this the answer was Django's HTML 400 page, not the API's 413.
        exc = BodyTooLarge(f"The request body is larger than the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    code = getattr(exc, "http_status", None)
    if code is None:
        return views.exception_handler(exc, context)
    extra = exc.http_extra() if hasattr(exc, "http_extra") else {}
    return Response({"detail": str(exc), **extra}, status=code)


class IdFilterSet(django_filters.rest_framework.FilterSet):
    """A related object in `filterset_fields` is filtered by its id as a plain number.

    django-filter's default, a choice among every row of the related table, answered a missing id with
    400 ("Select a valid choice") and an id the user may not see with an empty list: anyone could probe
    which patients, cases or projects exist.  Now both are an empty list.
    """

    FILTER_DEFAULTS = {
        **django_filters.filterset.FILTER_FOR_DBFIELD_DEFAULTS,
        models.ForeignKey: {"filter_class": django_filters.NumberFilter},
        models.OneToOneField: {"filter_class": django_filters.NumberFilter},
    }


class FilterBackend(django_filters.rest_framework.DjangoFilterBackend):
    """DjangoFilterBackend over IdFilterSet (settings.REST_FRAMEWORK's DEFAULT_FILTER_BACKENDS)."""

    filterset_base = IdFilterSet

    def get_filterset_kwargs(self, request, queryset, view):
        kwargs = super().get_filterset_kwargs(request, queryset, view)
        if format_was_the_output_format(request):  # ?format=json filters nothing (the slide lists' `format`)
            kwargs["data"] = kwargs["data"].copy()
            del kwargs["data"][api_settings.URL_FORMAT_OVERRIDE]
        return kwargs
