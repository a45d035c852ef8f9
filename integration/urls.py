"""The integration app's API routes, mounted under api/integration/ (pdl1site.urls)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from integration.api import InboundViewSet, OutboxViewSet, ServiceRequestView

router = SimpleRouter()
router.register("outbox", OutboxViewSet, basename="integration-outbox")
router.register("inbound", InboundViewSet, basename="integration-inbound")

urlpatterns = [
    path("fhir/ServiceRequest", ServiceRequestView.as_view(), name="integration-fhir-servicerequest"),
    *router.urls,
]
