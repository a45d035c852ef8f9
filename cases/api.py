"""REST API for patients, cases, slides and reports. Thin: logic lives in services/access."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from django.http import HttpResponse

from cases import access, reports, services
from cases.audit import log_access
from cases.choices import DocumentKind, ReportStatus, Role
from cases.models import Case, Patient, RecordLocked, Report, ReportError, Slide
from cases.permissions import CLINICAL_ROLES, HasRole
from cases.uploads import STORAGE_FULL, storage_full
from cases.views import thumbnail_response
from pdl1site.rest import JSONParser
from cases.serializers import (
    CaseSerializer,
    PatientSerializer,
    PseudonymousSlideSerializer,
    ReportAmendSerializer,
    ReportCommentSerializer,
    ReportDraftSerializer,
    ReportSerializer,
    ReportSignSerializer,
    SlideMppSerializer,
    SlideSerializer,
    SlideUploadSerializer,
)


class AuditedRetrieveMixin:
    """Log an ACCESS audit entry for every record shown, in lists and details alike."""

    def accessed_with(self, obj) -> list:
        """What a row or a detail of `obj` shows: the object, and for some the patient it names."""
        return [obj]

    def retrieve(self, request, *args, **kwargs):
        instance = self.get_object()
        log_access(*self.accessed_with(instance))
        return Response(self.get_serializer(instance).data)

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = page if page is not None else list(queryset)
        # One entry per record shown: a patient named by several rows is logged once, as on the pages.
        log_access(*dict.fromkeys(shown for row in rows for shown in self.accessed_with(row)))
        data = self.get_serializer(rows, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)


class Locked(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "locked_by_signed_report"


class LockedBySignedReportsMixin:
    """A field a signed report states changes only under an open amendment: otherwise 409."""

    def perform_update(self, serializer):
        try:
            serializer.save()
        except RecordLocked as exc:
            raise Locked(str(exc)) from None


class PatientViewSet(AuditedRetrieveMixin, LockedBySignedReportsMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
                     viewsets.ReadOnlyModelViewSet):
    serializer_class = PatientSerializer
    permission_classes = [HasRole]
    allowed_roles = CLINICAL_ROLES
    filterset_fields = ["mrn", "sex", "department__code", "birth_date"]
    search_fields = ["mrn", "family_name", "given_name"]
    ordering_fields = ["family_name", "mrn", "birth_date", "created_at"]

    def get_queryset(self):
        return access.visible_patients(self.request.user).select_related("department")


class CaseViewSet(AuditedRetrieveMixin, LockedBySignedReportsMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
                  viewsets.ReadOnlyModelViewSet):
    serializer_class = CaseSerializer
    permission_classes = [HasRole]
    allowed_roles = CLINICAL_ROLES
    filterset_fields = ["accession", "indication", "assay_clone", "status", "patient", "department__code"]
    search_fields = ["accession", "patient__mrn", "patient__family_name"]
    ordering_fields = ["created_at", "accession", "status"]

    def get_queryset(self):
        return access.visible_cases(self.request.user).select_related("patient", "department")

    def perform_create(self, serializer):
        case = serializer.save(created_by=self.request.user)
        case.assigned_to.add(self.request.user)


class SlideViewSet(AuditedRetrieveMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = SlideSerializer
    permission_classes = [HasRole]
    allowed_roles = CLINICAL_ROLES
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    filterset_fields = ["case", "case__accession", "format", "marker", "sha256", "mpp_source"]
    search_fields = ["original_name", "case__accession"]
    ordering_fields = ["created_at", "original_name"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return access.visible_slides(self.request.user).select_related("case")

    def perform_update(self, serializer):
        try:
            serializer.save()
        except RecordLocked as exc:  # a slide that a signed report states stays in its case
            raise Locked(str(exc)) from None

    @extend_schema(request={"multipart/form-data": SlideUploadSerializer},
                   responses={201: SlideSerializer, 200: SlideSerializer, 400: OpenApiResponse(description="Bad input"),
                              507: OpenApiResponse(description="Slide storage full: nothing stored")})
    def create(self, request):
        """Upload a slide (multipart field `files`, repeated for a DICOM series)."""
        data = request.data  # parses the body: the upload handler streams files to disk here
        if getattr(request._request, "upload_too_large", False):
            return Response({"detail": "The upload is larger than the configured limit."},
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        if storage_full(request):
            return Response({"detail": STORAGE_FULL}, status=status.HTTP_507_INSUFFICIENT_STORAGE)
        uploads = request.FILES.getlist("files") + request.FILES.getlist("file")
        form = SlideUploadSerializer(data={**{k: data.get(k) for k in ("name", "case", "mpp", "marker") if data.get(k)},
                                           "files": uploads})
        form.is_valid(raise_exception=True)
        params = form.validated_data
        case = None
        try:
            if "case" in params:
                case = services.check_case_for_user(params["case"], request.user)
            sources = services.sources_from_uploads(uploads, rename=params.get("name"))
            result = services.do_ingest_slide(sources, case=case, uploaded_by=request.user, mpp=params.get("mpp"),
                                              marker=params.get("marker"))
        except services.IngestStorageFull as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_507_INSUFFICIENT_STORAGE)
        except services.IngestError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        body = {**SlideSerializer(result.slide, context={"request": request}).data, "duplicate": result.duplicate}
        if result.duplicate:
            body["detail"] = "This file is already stored; the existing slide is returned."
        return Response(body, status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED)

    @extend_schema(request=SlideMppSerializer, responses=SlideSerializer)
    @action(detail=True, methods=["post"])
    def mpp(self, request, pk=None):
        """Set the resolution of a slide whose file carries none (or a wrong one)."""
        slide = self.get_object()
        form = SlideMppSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            services.do_set_slide_mpp(slide, form.validated_data["mpp_x"], form.validated_data.get("mpp_y"))
        except services.IngestError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(SlideSerializer(slide, context={"request": request}).data)

    @extend_schema(responses={(200, "image/png"): bytes})
    @action(detail=True, methods=["get"])
    def thumbnail(self, request, pk=None):
        slide = self.get_object()
        log_access(slide)
        return thumbnail_response(slide)


class PseudonymousSlideViewSet(viewsets.ReadOnlyModelViewSet):
    """Slides by pseudonymous id, for annotation work: no patient or case identifiers."""

    serializer_class = PseudonymousSlideSerializer
    permission_classes = [HasRole]
    allowed_roles = (Role.ADMIN, Role.PATHOLOGIST, Role.ANNOTATOR)
    lookup_field = "pseudo_id"
    filterset_fields = ["marker", "format"]
    ordering_fields = ["created_at"]

    def get_queryset(self):
        return access.pseudonymous_slides(self.request.user)

    @extend_schema(responses={(200, "image/png"): bytes})
    @action(detail=True, methods=["get"])
    def thumbnail(self, request, pseudo_id=None):
        return thumbnail_response(self.get_object())


def _report_error(exc) -> Response:
    # 409 for a report that changed since the client read it (ReportConflict.http_status), else 400.
    return Response({"detail": str(exc)}, status=getattr(exc, "http_status", status.HTTP_400_BAD_REQUEST))


@extend_schema_serializer(component_name="Report")
class ReportReadSerializer(ReportSerializer):
    """cases.serializers.ReportSerializer, plus the draft's fingerprint that signing it sends back."""

    draft_fingerprint = serializers.SerializerMethodField(
        help_text="A draft's fingerprint (reports.draft_fingerprint: sha256 of its job, scores with the slide's "
                  "check before scoring as it stands, comment, amendment reason and the case's and patient's "
                  "reported fields): send it with the signature "
                  "(POST .../sign/), which is refused (409) when the draft no longer matches it. Null for a "
                  "signed or amended version.")

    class Meta(ReportSerializer.Meta):
        fields = [*ReportSerializer.Meta.fields, "draft_fingerprint"]
        read_only_fields = fields

    def to_representation(self, report):
        # A draft's slide check as signing would record it, read once for its scores and its fingerprint.
        return super().to_representation(report.state_slide_qc())

    def get_draft_fingerprint(self, report) -> str | None:
        return None if report.is_locked else reports.draft_fingerprint(report)


@extend_schema_serializer(component_name="ReportSign")
class ReportSignRequestSerializer(ReportSignSerializer):
    draft_fingerprint = serializers.CharField(
        help_text="The `draft_fingerprint` of the draft as read (GET /api/reports/{id}/) and reviewed: a draft "
                  "changed since (prepared again, re-commented, a stated field edited, the slide's check or its "
                  "override changed) is not signed (409).")


class ReportViewSet(AuditedRetrieveMixin, viewsets.ReadOnlyModelViewSet):
    """Report versions. Pathologists create drafts, sign (re-entering their password) and amend;
    clinicians read and download the signed reports of their patients. Signed versions never change."""

    serializer_class = ReportReadSerializer
    permission_classes = [HasRole]
    allowed_roles = (Role.ADMIN, Role.PATHOLOGIST, Role.CLINICIAN)
    filterset_fields = ["case", "status"]
    ordering_fields = ["signed_at", "created_at", "version"]

    def get_queryset(self):
        return access.visible_reports(self.request.user).select_related("case__patient", "signed_by", "job")

    def accessed_with(self, report) -> list:
        return [report, report.case.patient]  # patient_mrn names the patient, as the report pages do

    def _authoring(self):
        if not access.has_role(self.request.user, Role.PATHOLOGIST):
            self.permission_denied(self.request, message="Only pathologists create, sign and amend reports.")

    @extend_schema(request=ReportDraftSerializer, responses={201: ReportReadSerializer})
    def create(self, request):
        """Create the case's draft (or refill its open draft) from a finished analysis job."""
        self._authoring()
        form = ReportDraftSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        from analysis.models import AnalysisJob

        case = access.visible_cases(request.user).filter(pk=form.validated_data["case"]).first()
        if case is None:
            raise ValidationError({"case": "no such case"})
        job = AnalysisJob.objects.filter(pk=form.validated_data["job"]).first()
        try:
            report = reports.do_create_draft(case, job, request.user, comment=form.validated_data.get("comment"))
        except ReportError as exc:
            return _report_error(exc)
        return Response(ReportReadSerializer(report).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReportCommentSerializer, responses={200: ReportReadSerializer, 409: OpenApiResponse(
        description="The version is no longer a draft (signed since it was read): nothing saved")})
    @action(detail=True, methods=["post"])
    def comment(self, request, pk=None):
        """Edit a draft's comment."""
        self._authoring()
        form = ReportCommentSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            report = reports.do_update_draft(self.get_object(), request.user, form.validated_data["comment"])
        except ReportError as exc:
            return _report_error(exc)
        return Response(ReportReadSerializer(report).data)

    @extend_schema(request=ReportSignRequestSerializer, responses={200: ReportReadSerializer, 409: OpenApiResponse(
        description="The draft changed since its draft_fingerprint was read, or it is no longer a draft: nothing "
                    "signed")})
    @action(detail=True, methods=["post"])
    def sign(self, request, pk=None):
        """Sign a draft; the pathologist re-enters their password (wrong: 400, nothing changes) and sends the
        `draft_fingerprint` they read with the draft (missing: 400; the draft changed since: 409, nothing
        is signed)."""
        self._authoring()
        report = self.get_object()  # a report the user cannot see is 404, whatever the body
        form = ReportSignRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        from cases.auth import LockedOut, check_reauthentication

        try:
            # Counted like a login (django-axes): a guessed sign-off password locks the account too.
            check_reauthentication(request, request.user, form.validated_data["password"])
            report = reports.do_sign(report, request.user, form.validated_data["password"],
                                     form.validated_data["draft_fingerprint"])
        except LockedOut as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        except ReportError as exc:
            return _report_error(exc)
        return Response(ReportReadSerializer(report).data)

    @extend_schema(request=ReportAmendSerializer, responses={201: ReportReadSerializer})
    @action(detail=True, methods=["post"])
    def amend(self, request, pk=None):
        """Start an amendment of a signed version: a new draft version with a reason."""
        self._authoring()
        form = ReportAmendSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            report = reports.do_amend(self.get_object(), request.user, form.validated_data["reason"],
                                      comment=form.validated_data.get("comment"))
        except ReportError as exc:
            return _report_error(exc)
        return Response(ReportReadSerializer(report).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={(200, "application/pdf"): bytes})
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        report = self.get_object()
        log_access(*self.accessed_with(report))
        return pdf_response(report)

    @extend_schema(responses={(200, "application/fhir+json"): dict})
    @action(detail=True, methods=["get"])
    def fhir(self, request, pk=None):
        report = self.get_object()
        log_access(*self.accessed_with(report))
        return fhir_response(report)


def pdf_response(report) -> HttpResponse:
    return document_response(report, DocumentKind.PDF, "pdf")


def fhir_response(report) -> HttpResponse:
    return document_response(report, DocumentKind.FHIR, "fhir.json")


def document_response(report, kind: str, extension: str) -> HttpResponse:
    """A signed or amended version's stored bytes (a draft's live rendering), with their sha256 in
    `Repr-Digest` (RFC 9530, base64) and `X-Content-SHA256` (hex, as on the page and in the API)."""
    import base64

    from cases.documents import served_document

    doc = served_document(report.state_slide_qc(), kind)  # a draft renders its slide's check as it stands
    response = HttpResponse(doc.data, content_type=doc.media_type)
    superseded = "-superseded" if report.status == ReportStatus.AMENDED else ""
    response["Content-Disposition"] = (f'attachment; filename="{report.case.accession}-v{report.version}'
                                       f'{superseded}.{extension}"')
    response["Cache-Control"] = "private, no-store"
    response["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(doc.sha256)).decode()}:"
    response["X-Content-SHA256"] = doc.sha256
    response["X-Report-Status"] = report.status  # a superseded version's stored PDF still reads as signed
    return response
