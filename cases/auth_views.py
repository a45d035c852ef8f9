"""The API token endpoint (a view module of its own: cases.auth is imported by DRF's settings)."""

from collections.abc import Mapping

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings

from cases.auth import check_is_locked_out, do_issue_token, lockout_message, token_expires_at


class ObtainExpiringAuthToken(ObtainAuthToken):
    """POST username and password → {"token", "expires"}; an expired token is replaced."""

    # The API's parsers (the bounded JSON one), not the stock ones ObtainAuthToken names: with those an
    # anonymous caller's deeply nested JSON was a RecursionError (500) and a body past the limit was read.
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES

    @extend_schema(responses={
        200: inline_serializer("IssuedToken", {"token": serializers.CharField(), "expires": serializers.DateTimeField()}),
        400: OpenApiResponse(description="wrong user name or password"),
        429: OpenApiResponse(description="too many wrong passwords: the account is locked for a while"),
    })
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            # The serializer's authenticate() went through django-axes: a locked-out user name is
            # refused like a wrong password there; say why here, with the lockout's 429.
            data = request.data if isinstance(request.data, Mapping) else {}  # a JSON array, string or null
            username = data.get("username")
            if isinstance(username, str) and username and check_is_locked_out(request, username):
                return Response({"detail": lockout_message()}, status=settings.AXES_HTTP_RESPONSE_CODE)
            raise ValidationError(serializer.errors)
        token = do_issue_token(serializer.validated_data["user"])
        return Response({"token": token.key, "expires": token_expires_at(token).isoformat()})
