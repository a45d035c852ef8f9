"""Serializers of the annotation API: pseudonymous (slide pseudo id and region, never patient data)."""

from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework import serializers

from annotations.choices import shown_labels
from annotations.models import AnnotationProject, AnnotationSession, Field
from annotations.services import not_assignable
from cases.choices import Indication, Marker


class ProjectSerializer(serializers.ModelSerializer):
    annotators = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    labels = serializers.SerializerMethodField()

    class Meta:
        model = AnnotationProject
        fields = ["id", "name", "indication", "marker", "labels", "created_by", "annotators", "created_at"]
        read_only_fields = fields

    def get_labels(self, project) -> list[dict]:
        return shown_labels(project.labels)


class ProjectCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    indication = serializers.ChoiceField(choices=Indication.choices, default=Indication.OTHER)
    marker = serializers.ChoiceField(choices=Marker.choices, default=Marker.PDL1)
    extra_labels = serializers.ListField(child=serializers.JSONField(), required=False, default=list)
    annotators = serializers.ListField(child=serializers.CharField(), required=False, default=list)


class AnnotatorsSerializer(serializers.Serializer):
    annotators = serializers.ListField(child=serializers.CharField(), allow_empty=False)


def users_by_name(names):
    """Users named in `names`; unknown names raise a ValidationError worded as for a user the manager may
    not assign (services.check_annotators), so that the answer tells nothing of who exists."""
    users = {u.username: u for u in get_user_model().objects.filter(username__in=names)}
    unknown = [n for n in names if n not in users]
    if unknown:
        raise serializers.ValidationError({"annotators": [not_assignable(n) for n in unknown]})
    return [users[n] for n in dict.fromkeys(names)]


class FieldSerializer(serializers.ModelSerializer):
    slide = serializers.UUIDField(source="slide.pseudo_id", read_only=True)
    region = serializers.ListField(read_only=True)

    class Meta:
        model = Field
        fields = ["id", "project", "slide", "x", "y", "width", "height", "region", "source", "tissue_fraction",
                  "created_at"]
        read_only_fields = fields


class FieldCreateSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    slide = serializers.UUIDField(help_text="pseudo id of the slide")
    x = serializers.IntegerField(required=False)
    y = serializers.IntegerField(required=False)
    width = serializers.IntegerField(required=False)
    height = serializers.IntegerField(required=False)
    sample = serializers.IntegerField(required=False, min_value=1, max_value=200,
                                      help_text="sample this many fields from tissue instead of a drawn region")
    size_px = serializers.IntegerField(required=False, default=1024, min_value=16, max_value=20_000)
    mpp = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0.05, max_value=20)
    seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=2**32 - 1)

    def validate(self, data):
        drawn = [k for k in ("x", "y", "width", "height") if k in data]
        if "sample" not in data and len(drawn) != 4:
            raise serializers.ValidationError("give a region (x, y, width, height) or 'sample' (a number of fields)")
        return data


class SessionSerializer(serializers.ModelSerializer):
    annotator = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    project = serializers.IntegerField(source="field.project_id", read_only=True)
    project_name = serializers.CharField(source="field.project.name", read_only=True)
    labels = serializers.SerializerMethodField()
    slide = serializers.UUIDField(source="field.slide.pseudo_id", read_only=True)
    region = serializers.ListField(source="field.region", read_only=True)
    dzi = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()

    class Meta:
        model = AnnotationSession
        fields = ["id", "field", "project", "project_name", "labels", "slide", "region", "dzi", "annotator",
                  "status", "version", "counts", "comment", "submitted_at", "reviewed_by", "reviewed_at",
                  "updated_at"]
        read_only_fields = fields

    def get_labels(self, session) -> list[dict]:
        return shown_labels(session.field.project.labels)

    def get_dzi(self, obj) -> str:
        return reverse("viewer:pseudo-dzi", args=[obj.field.slide.pseudo_id])

    def get_counts(self, obj) -> dict[str, int]:
        return obj.counts()


class PointsSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="the version these points are based on")
    points = serializers.JSONField(help_text='[{"x": .., "y": .., "label": ..}] level-0 px')


class ReviewSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    # Required: without it a reviewer's stale page accepted a set resubmitted since, unseen.
    version = serializers.IntegerField(min_value=0, max_value=2**31,
                                       help_text="the session version reviewed; refused (409) if it was resubmitted since")


class SubmitSerializer(serializers.Serializer):
    # Required: a tab that was behind submitted points it never showed.
    version = serializers.IntegerField(min_value=0, max_value=2**31,
                                       help_text="the version of the points submitted; refused (409) if another was "
                                                 "saved since")
