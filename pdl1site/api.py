"""The REST API router: every app's viewsets under /api/."""

from rest_framework.routers import DefaultRouter

from annotations.api import FieldViewSet, ProjectViewSet, SessionViewSet
from cases.api import CaseViewSet, PatientViewSet, PseudonymousSlideViewSet, ReportViewSet, SlideViewSet
from viewer.api import ViewerJobViewSet
from workers.api import AnalysisJobViewSet

router = DefaultRouter()
router.register("patients", PatientViewSet, basename="patient")
router.register("cases", CaseViewSet, basename="case")
router.register("slides", SlideViewSet, basename="slide")
router.register("pseudo-slides", PseudonymousSlideViewSet, basename="pseudo-slide")
router.register("reports", ReportViewSet, basename="report")
router.register("jobs", AnalysisJobViewSet, basename="job")
router.register("viewer/jobs", ViewerJobViewSet, basename="viewer-job")
router.register("annotation/projects", ProjectViewSet, basename="annotation-project")
router.register("annotation/fields", FieldViewSet, basename="annotation-field")
router.register("annotation/sessions", SessionViewSet, basename="annotation-session")
