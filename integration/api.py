"""REST API of the integration app: FHIR ServiceRequest in (service users), delivery state (admins). Thin."""

from pdl1site.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.views import APIView

from cases.choices import Role
from cases.permissions import HasRole
from integration.inbound import handle_fhir_service_request
from integration.models import InboundMessage, OutboxMessage
from integration.permissions import CanSubmitOrders
from integration.serializers import InboundMessageSerializer, OutboxMessageSerializer

FHIR_JSON = "application/fhir+json"


class ServiceRequestView(APIView):
    """POST a FHIR R4 ServiceRequest: the order's Patient and Case are created or updated."""

    permission_classes = [CanSubmitOrders]
    http_method_names = ["post", "options"]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={
        201: OpenApiResponse(OpenApiTypes.OBJECT, description="OperationOutcome: the case was created"),
        200: OpenApiResponse(OpenApiTypes.OBJECT, description="OperationOutcome: updated, unchanged or a repeat"),
        400: OpenApiResponse(OpenApiTypes.OBJECT, description="OperationOutcome: not a valid ServiceRequest"),
        413: OpenApiResponse(OpenApiTypes.OBJECT, description="larger than PDL1_INTEGRATION_MAX_MESSAGE_BYTES"),
        422: OpenApiResponse(OpenApiTypes.OBJECT, description="OperationOutcome: refused, nothing changed")})
    def post(self, request):
        body = request.body  # the exact bytes: kept as received
        if len(body) > settings.PDL1_INTEGRATION_MAX_MESSAGE_BYTES:
            return HttpResponse(b'{"resourceType": "OperationOutcome", "issue": [{"severity": "error", '
                                b'"code": "too-long", "diagnostics": "the request is too large"}]}',
                                status=413, content_type=FHIR_JSON)
        status, answer = handle_fhir_service_request(body, request.user, request.headers.get("Idempotency-Key", ""))
        return HttpResponse(answer, status=status, content_type=FHIR_JSON)


class AdminListViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    permission_classes = [HasRole]
    allowed_roles = (Role.ADMIN,)
    filterset_fields = ["channel"]


class OutboxViewSet(AdminListViewSet):
    """Result deliveries and their state (administrators)."""

    queryset = OutboxMessage.objects.select_related("report__case").order_by("-pk")
    serializer_class = OutboxMessageSerializer
    filterset_fields = ["channel", "state"]


class InboundViewSet(AdminListViewSet):
    """Order messages received and how each was answered (administrators)."""

    queryset = InboundMessage.objects.select_related("case").order_by("-pk")
    serializer_class = InboundMessageSerializer
    filterset_fields = ["channel", "outcome"]
