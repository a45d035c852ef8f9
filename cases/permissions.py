from rest_framework.permissions import BasePermission

from cases.access import has_role
from cases.choices import Role


class HasRole(BasePermission):
    """Allow the view to users holding one of `view.allowed_roles`."""

    message = "Your role does not give access to this resource."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and has_role(request.user, *view.allowed_roles))


CLINICAL_ROLES = (Role.ADMIN, Role.PATHOLOGIST)
