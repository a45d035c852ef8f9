from django.contrib import admin

from analysis.admin import ReadOnlyRecordAdmin
from annotations.models import AnnotationProject, AnnotationRevision, AnnotationSession, Field


@admin.register(AnnotationProject)
class AnnotationProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "indication", "marker", "created_by", "created_at"]
    filter_horizontal = ["annotators"]


@admin.register(Field)
class FieldAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "slide", "x", "y", "width", "height", "source"]
    list_filter = ["source", "project"]


@admin.register(AnnotationSession)
class AnnotationSessionAdmin(admin.ModelAdmin):
    list_display = ["pk", "field", "annotator", "status", "version", "updated_at"]
    list_filter = ["status"]
    readonly_fields = ["points", "version"]


@admin.register(AnnotationRevision)
class AnnotationRevisionAdmin(ReadOnlyRecordAdmin):
    """Read-only history."""

    list_display = ["session", "version", "saved_by", "source", "saved_at"]
