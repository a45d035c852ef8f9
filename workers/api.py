"""REST API for analysis jobs: list, start, cancel, retry. Thin: logic in workers.services."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from analysis.models import AnalysisJob
from cases import access
from cases.permissions import CLINICAL_ROLES, HasRole
from workers.models import TrainingRun
from workers.progress import detections_before_review
from workers.services import JobError, do_cancel_job, do_retry_job, do_start_job


class AnalysisJobSerializer(serializers.ModelSerializer):
    # The merge's output, named for what it is and without its TPS: the one TPS of a job is its scores'
    # (viewer.scores.job_scores, corrections applied, counted inside the drawn regions). It was served as
    # "summary" with a whole-slide uncorrected TPS that nothing said was one.
    detections_before_review = serializers.SerializerMethodField()

    class Meta:
        model = AnalysisJob
        fields = ["id", "slide", "detector", "model_version", "provenance", "software_version", "parameters", "status",
                  "tiles_done", "tiles_total", "batches_done", "batches_total", "timings", "error", "tissue_area_mm2",
                  "detections_before_review", "attempt", "created_at", "started_at", "finished_at"]
        read_only_fields = [f for f in fields if f not in ("slide", "detector", "parameters")]
        extra_kwargs = {"detector": {"required": False, "help_text": '"classic", or the name or id of a model '
                                                                     "released for clinical use; blank: the default"}}

    def get_detections_before_review(self, job) -> dict | None:
        return detections_before_review(job)

    def get_fields(self):
        # Only slides the caller may see are choices: a slide of another department answers exactly
        # like a missing one ("Invalid pk"), so ids cannot be probed for existence.
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and "slide" in fields:
            fields["slide"].queryset = access.visible_slides(request.user)
        return fields


class AnalysisJobFilter(django_filters.FilterSet):
    # A plain number, not a choice among all slides: an invisible slide and a missing one both
    # give an empty list (a choice filter answered 400 for missing ids only).
    slide = django_filters.NumberFilter(field_name="slide_id")

    class Meta:
        model = AnalysisJob
        fields = ["slide", "status"]


class AnalysisJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = AnalysisJobSerializer
    permission_classes = [HasRole]
    allowed_roles = CLINICAL_ROLES
    filterset_class = AnalysisJobFilter
    ordering_fields = ["created_at"]

    def get_queryset(self):
        return AnalysisJob.objects.filter(slide__in=access.visible_slides(self.request.user))

    def create(self, request, *args, **kwargs):
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        slide = form.validated_data["slide"]
        if not access.visible_slides(request.user).filter(pk=slide.pk).exists():
            return Response({"slide": ["no such slide"]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            job = do_start_job(slide, user=request.user, detector=form.validated_data.get("detector") or None,
                               parameters=form.validated_data.get("parameters") or {})
        except JobError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        job.refresh_from_db()
        return Response(self.get_serializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._transition(do_cancel_job)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._transition(do_retry_job)

    def _transition(self, service):
        try:
            job = service(self.get_object())
        except JobError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        job.refresh_from_db()
        return Response(self.get_serializer(job).data)


class TrainingRunSerializer(serializers.ModelSerializer):
    """A training run's state and progress (workers.training), as the annotation API lists it."""

    state = serializers.CharField(source="state_label", read_only=True)
    model_version = serializers.SlugRelatedField(slug_field="name", read_only=True)
    model_status = serializers.CharField(source="model_version.status", read_only=True, default=None)

    class Meta:
        model = TrainingRun
        fields = ["id", "name", "status", "state", "cancel_requested", "steps_done", "steps_total", "loss",
                  "eta_seconds", "backbone", "error", "model_version", "model_status", "created_at", "started_at",
                  "progress_at", "finished_at"]
        read_only_fields = fields
