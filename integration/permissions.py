from rest_framework.permissions import BasePermission


class CanSubmitOrders(BasePermission):
    """Hospital systems' service users: the permission integration.submit_orders (the "integration" group)."""

    message = "Only a hospital system's service user (permission integration.submit_orders) may submit orders."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.has_perm("integration.submit_orders"))
