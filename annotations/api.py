"""REST API of point annotation. Thin: logic lives in annotations.services."""

import json
import re

from pdl1site.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from annotations import dataset, formats, services
from annotations.serializers import (AnnotatorsSerializer, FieldCreateSerializer, FieldSerializer,
                                     PointsSerializer, ProjectCreateSerializer, ProjectSerializer, ReviewSerializer,
                                     SessionSerializer, SubmitSerializer, users_by_name)
from cases import access
from cases.choices import Role
from cases.permissions import HasRole
from pdl1site.rest import JSONParser
from workers.api import TrainingRunSerializer
from workers.training import TrainingError, do_cancel_training

ANNOTATION_ROLES = (Role.ADMIN, Role.PATHOLOGIST, Role.ANNOTATOR)
MANAGER_ROLES = (Role.ADMIN, Role.PATHOLOGIST)


def _radius(request):
    try:
        return float(request.query_params.get("radius_um", services.DEFAULT_RADIUS_UM))
    except ValueError:
        raise ValidationError({"radius_um": "must be a number (µm)"}) from None


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    """Annotation projects: pathologists and admins create them and assign annotators."""

    serializer_class = ProjectSerializer
    permission_classes = [HasRole]
    allowed_roles = ANNOTATION_ROLES

    def get_queryset(self):
        return services.visible_projects(self.request.user).select_related("created_by").prefetch_related("annotators")

    def _managed(self):
        """The project, for an action over all its fields: the user manages it and sees every slide."""
        project = self.get_object()
        try:
            services.check_manages_whole_project(self.request.user, project)
        except services.NotAllowed as exc:
            raise PermissionDenied(str(exc)) from None
        return project

    @extend_schema(request=ProjectCreateSerializer, responses={201: ProjectSerializer})
    def create(self, request):
        if not access.has_role(request.user, *MANAGER_ROLES):
            raise PermissionDenied("only pathologists and administrators create annotation projects")
        form = ProjectCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        project = services.do_create_project(request.user, data["name"], data["indication"], data["marker"],
                                             data["extra_labels"], users_by_name(data["annotators"]))
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AnnotatorsSerializer, responses=ProjectSerializer)
    @action(detail=True, methods=["post"])
    def annotators(self, request, pk=None):
        """Add annotators (usernames): each gets a session on every field of the project."""
        project = self._managed()
        form = AnnotatorsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.do_assign_annotators(project, users_by_name(form.validated_data["annotators"]), manager=request.user)
        return Response(ProjectSerializer(project).data)

    @action(detail=True, methods=["post"], url_path="export-dataset")
    def export_dataset(self, request, pk=None):
        """Write the accepted sessions as a training dataset folder under MEDIA_ROOT/datasets/; answers
        its name there ({"dataset", "fields"})."""
        project = self._managed()
        try:
            mpp = float(request.data.get("mpp", 0.5))
        except (TypeError, ValueError):
            raise ValidationError({"mpp": "must be a number (µm/px)"}) from None
        out, manifest = dataset.do_export_project_dataset(project, mpp)
        # The folder's name under MEDIA_ROOT/datasets/, never its server path; sessions on a slide of another
        # marker than the project's are named when there are any (dataset.marker_matched).
        answer = {"dataset": out.name, "fields": len(manifest["fields"])}
        if manifest["left_out"]:
            answer["left_out"] = manifest["left_out"]
        return Response(answer, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"], url_path="train-model")
    def train_model(self, request, pk=None):
        """Export the accepted fields and queue a training job on a worker; the trained model is
        registered as a ModelVersion (name given here) with its held-out evaluation."""
        project = self._managed()
        queued = dataset.do_queue_training(project, request.data.get("name"), request.data.get("steps", 500),
                                           request.data.get("backbone", "resnet18"), user=request.user)
        return Response(queued, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=TrainingRunSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="training-runs")
    def training_runs(self, request, pk=None):
        """The project's training runs, newest first: state, steps done of total, loss, ETA and the
        registered model version (research use until promoted)."""
        project = self._managed()
        return Response(TrainingRunSerializer(dataset.training_runs(project), many=True).data)

    @extend_schema(request=None, responses=TrainingRunSerializer)
    @action(detail=True, methods=["post"], url_path=r"training-runs/(?P<run_id>[0-9]+)/cancel")
    def cancel_training(self, request, pk=None, run_id=None):
        """Cancel a training run: a queued one at once, a running one after its current step; nothing
        is registered. 409 when it has already ended."""
        project = self._managed()
        run = dataset.training_run(project, run_id)
        if run is None:
            raise NotFound("no such training run of this project")
        try:
            run = do_cancel_training(run)
        except TrainingError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(TrainingRunSerializer(run).data)


class FieldViewSet(viewsets.ReadOnlyModelViewSet):
    """Fields (level-0 regions) to annotate; created from a drawn region or sampled from tissue."""

    serializer_class = FieldSerializer
    permission_classes = [HasRole]
    allowed_roles = ANNOTATION_ROLES
    filterset_fields = ["project"]

    def get_queryset(self):
        return services.visible_fields(self.request.user).select_related("slide")

    def _reviewable(self):
        field = self.get_object()
        if not services.can_manage(self.request.user, field.project):
            raise PermissionDenied("only the project's pathologists and administrators review fields")
        try:
            services.check_not_blind(field, self.request.user)
        except services.NotAllowed as exc:
            raise PermissionDenied(str(exc)) from None
        return field

    @extend_schema(request=FieldCreateSerializer, responses={201: FieldSerializer(many=True)})
    def create(self, request):
        form = FieldCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        project = services.managed_projects(request.user).filter(pk=data["project"]).first()
        if project is None:
            raise ValidationError({"project": "no such project that you manage"})
        slide = access.pseudonymous_slides(request.user).filter(pseudo_id=data["slide"]).first()
        if slide is None:
            raise ValidationError({"slide": "no such slide"})
        if "sample" in data:
            fields = services.do_sample_fields(project, slide, data["sample"], data["size_px"], data["mpp"],
                                               data["seed"], user=request.user)
        else:
            fields = [services.do_create_field(project, slide, data["x"], data["y"], data["width"], data["height"],
                                               request.user)]
        return Response(FieldSerializer(fields, many=True).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"])
    def agreement(self, request, pk=None):
        """Inter-annotator agreement (?radius_um=4): matched-point F1 and positive-% difference per pair."""
        return Response(services.field_agreement(self._reviewable(), _radius(request)))

    @action(detail=True, methods=["get"])
    def consensus(self, request, pk=None):
        """Consensus points: matched by a majority of annotators, label by majority vote (?fmt=geojson: QuPath)."""
        field = self._reviewable()
        result = services.field_consensus(field, _radius(request))
        if request.query_params.get("fmt") == "geojson":
            return _geojson_download(formats.to_geojson(result["points"], field.project.labels),
                                     f"field-{field.pk}-consensus")
        return Response(result)


class SessionViewSet(viewsets.ReadOnlyModelViewSet):
    """Annotation sessions: annotators see only their own; pseudonymous (no patient data)."""

    serializer_class = SessionSerializer
    permission_classes = [HasRole]
    allowed_roles = ANNOTATION_ROLES
    filterset_fields = ["status", "field", "field__project"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        return services.visible_sessions(self.request.user).select_related(
            "field__slide", "field__project", "annotator", "reviewed_by")

    @extend_schema(methods=["get"], responses=PointsSerializer)
    @extend_schema(methods=["put"], request=PointsSerializer, responses=PointsSerializer)
    @action(detail=True, methods=["get", "put"])
    def points(self, request, pk=None):
        """GET the point set and its version; PUT {"version": n, "points": [...]} replaces it (409 when stale)."""
        session = self.get_object()
        if request.method == "PUT":
            form = PointsSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            session = services.do_save_points(session, request.user, form.validated_data["version"],
                                              form.validated_data["points"])
        return Response({"version": session.version, "status": session.status,
                         "points": [{"x": x, "y": y, "label": label} for x, y, label in session.points]})

    @extend_schema(request=SubmitSerializer)
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """{"version": n}: the version of the points the annotator saw; 409 when another was saved since."""
        session = self.get_object()
        services.check_submitter(session, request.user)  # who may, before what was sent: 403 before 400
        form = SubmitSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return Response(SessionSerializer(services.do_submit(session, request.user,
                                                             form.validated_data["version"])).data)

    def _reviewed(self):
        """The session and the review form; the version reviewed is required: a session resubmitted since
        the reviewer loaded it is not accepted or returned unseen (409)."""
        session = self.get_object()
        services.check_reviewer(session, self.request.user)  # 403 before a missing version's 400
        form = ReviewSerializer(data=self.request.data)
        form.is_valid(raise_exception=True)
        return session, form.validated_data

    @extend_schema(request=ReviewSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        session, data = self._reviewed()
        session = services.do_accept(session, request.user, data["comment"], data["version"])
        return Response(SessionSerializer(session).data)

    @extend_schema(request=ReviewSerializer)
    @action(detail=True, methods=["post"], url_path="return")
    def return_(self, request, pk=None):
        session, data = self._reviewed()
        session = services.do_return(session, request.user, data["comment"], data["version"])
        return Response(SessionSerializer(session).data)

    @action(detail=True, methods=["get"], url_path="export")
    def export_points(self, request, pk=None):
        """?fmt=geojson (QuPath) or ?fmt=csv (x,y,label), level-0 slide pixels."""
        session = self.get_object()
        fmt = request.query_params.get("fmt", "geojson")
        body = services.export_points(session, fmt)
        name = f"field-{session.field_id}-session-{session.pk}"
        if fmt == "csv":
            response = HttpResponse(body, content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
            return response
        return _geojson_download(body, name)

    @action(detail=True, methods=["post"], url_path="import")
    def import_points(self, request, pk=None):
        """Replace the points with a file: fields `fmt` (geojson|csv), `version`, and `file` or `content`."""
        session = self.get_object()
        limit = settings.PDL1_ANNOTATION_IMPORT_MAX_BYTES
        upload = request.FILES.get("file")  # the upload handler stops a file past the limit (cases.uploads)
        if getattr(request._request, "upload_too_large", False) or (upload is not None and upload.size > limit):
            return Response({"detail": f"the file is larger than the import limit of {limit} bytes"},
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        content = upload.read() if upload is not None else request.data.get("content")
        if content is None:
            raise ValidationError({"file": "send the GeoJSON/CSV as a file upload 'file' or as 'content'"})
        if not isinstance(content, (str, bytes)):
            content = json.dumps(content)
        if len(content.encode() if isinstance(content, str) else content) > limit:
            return Response({"detail": f"the import is larger than the limit of {limit} bytes"},
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        version = _whole_number(request.data.get("version"))
        if version is None:
            raise ValidationError({"version": "the version the import replaces (an integer) is required"})
        fmt = request.data.get("fmt") or ("csv" if upload is not None and upload.name.lower().endswith(".csv") else "geojson")
        session = services.do_import_points(session, request.user, version, content, fmt)
        return Response({"version": session.version, "status": session.status, "counts": session.counts()})


def _geojson_download(body: dict, name: str) -> HttpResponse:
    """A GeoJSON file whatever the client's Accept header (a browser's link asks for text/html first, and
    the browsable API then sent its HTML page under the .geojson name)."""
    response = HttpResponse(json.dumps(body), content_type="application/geo+json")
    response["Content-Disposition"] = f'attachment; filename="{name}.geojson"'
    return response


def _whole_number(value) -> int | None:
    """An int, or a string of decimal digits; None for anything else (true, 1.9, "1e3", "")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip(), re.ASCII):
        return int(value.strip())
    return None
