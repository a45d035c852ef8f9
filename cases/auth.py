"""API tokens with a maximum age, revoked when their user's password changes.

DRF's stock tokens never expire and survive a password change: a token copied into a script
years ago would still read patient data after its owner changed a leaked password.
"""

from datetime import datetime, timedelta

from pdl1site.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed


def token_expires_at(token: Token) -> datetime:
    return token.created + timedelta(seconds=settings.PDL1_API_TOKEN_MAX_AGE)


def check_token_expired(token: Token, now: datetime | None = None) -> bool:
    return (now or timezone.now()) >= token_expires_at(token)


def do_issue_token(user, attempts: int = 3) -> Token:
    """The user's current token, or a new one where there is none or it has expired.

    Safe to call twice at once (a script started twice): a request that finds no token but loses the
    race to create one (a user holds one token: its INSERT is an IntegrityError) reads the winner's."""
    for _ in range(attempts - 1):
        try:
            return _current_or_new_token(user)
        except IntegrityError:
            continue  # another request created the token first: the next try returns it
    return _current_or_new_token(user)


def _current_or_new_token(user) -> Token:
    # The row stays locked from the expiry check to the replacement: two requests never both replace it.
    with transaction.atomic():
        token = Token.objects.select_for_update().filter(user=user).first()
        if token is not None and check_token_expired(token):
            token.delete()
            token = None
        return token or Token.objects.create(user=user)


def do_revoke_tokens(user) -> int:
    return Token.objects.filter(user=user).delete()[0]


class ExpiringTokenAuthentication(TokenAuthentication):
    """`Authorization: Token …`, refused (401) once the token is older than API_TOKEN_MAX_AGE."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if check_token_expired(token):
            token.delete()
            raise AuthenticationFailed("The token has expired: obtain a new one at /api/auth/token/.")
        return user, token


class RevokeTokensOnPasswordChange:
    """Listed in AUTH_PASSWORD_VALIDATORS for its `password_changed` hook, which Django calls after
    every password change (set_password then save: password forms, the admin, changepassword), and
    never for a mere hash upgrade at login. It validates nothing."""

    def validate(self, password, user=None):
        return None

    def password_changed(self, password, user=None):
        if user is not None and user.pk is not None:
            do_revoke_tokens(user)

    def get_help_text(self):
        return ""


# --- brute-force protection (django-axes; settings AXES_*, LOGIN_*) ---------------------------------

class LockedOut(PermissionDenied):
    """Too many wrong passwords for this user name: refused until the lockout ends.

    A PermissionDenied, so a page that does not catch it answers 403, which django-axes'
    middleware turns into its lockout page (429)."""


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (f"Too many wrong passwords for this account: it is locked for {minutes} minutes "
            "(each further try restarts the wait). An administrator can unlock it sooner.")


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: 429 with a JSON detail for the API, the lockout page otherwise."""
    from django.http import JsonResponse
    from django.shortcuts import render
    from django.urls import reverse

    if request.path.startswith(reverse("api:api-root")):  # under the host's prefix when mounted in one
        return JsonResponse({"detail": lockout_message()}, status=settings.AXES_HTTP_RESPONSE_CODE)
    return render(request, "registration/locked_out.html", {"message": lockout_message()},
                  status=settings.AXES_HTTP_RESPONSE_CODE)


def check_is_locked_out(request, username: str) -> bool:
    from axes.handlers.proxy import AxesProxyHandler

    return AxesProxyHandler.is_locked(request, {"username": username})


def check_reauthentication(request, user, password: str) -> None:
    """A signed-in user re-enters their password (report sign-off): counted like a login attempt.

    Raises LockedOut while the account is locked, the right password included. A wrong password is
    recorded as a failed attempt (and may start the lockout); the caller then refuses it as before."""
    from django.contrib.auth import authenticate

    if authenticate(request, username=user.get_username(), password=password or "") is None:
        if check_is_locked_out(request, user.get_username()):
            raise LockedOut(lockout_message())
