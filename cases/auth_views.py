"""The API token endpoint (a view module of its own: cases.auth is imported by DRF's settings)."""

from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response

from cases.auth import do_issue_token, token_expires_at


class ObtainExpiringAuthToken(ObtainAuthToken):
    """POST username and password → {"token", "expires"}; an expired token is replaced."""

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = do_issue_token(serializer.validated_data["user"])
        return Response({"token": token.key, "expires": token_expires_at(token).isoformat()})
