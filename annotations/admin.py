from django.contrib import admin

from analysis.admin import ReadOnlyRecordAdmin
from annotations.choices import SessionStatus
from annotations.models import AnnotationProject, AnnotationRevision, AnnotationSession, Field


@admin.register(AnnotationProject)
class AnnotationProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "indication", "marker", "created_by", "created_at"]
    filter_horizontal = ["annotators"]


@admin.register(Field)
class FieldAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "slide", "x", "y", "width", "height", "source"]
    list_filter = ["source", "project"]
    # Once a session of the field is accepted its points are training data in this field's frame: moving
    # or resizing the field would put them outside it (the export clamps them to the edge, silently).
    GEOMETRY = ["project", "slide", "x", "y", "width", "height"]

    def get_readonly_fields(self, request, obj=None):
        accepted = obj is not None and obj.sessions.filter(status=SessionStatus.ACCEPTED).exists()
        return [*super().get_readonly_fields(request, obj), *(self.GEOMETRY if accepted else [])]


@admin.register(AnnotationSession)
class AnnotationSessionAdmin(admin.ModelAdmin):
    list_display = ["pk", "field", "annotator", "status", "version", "updated_at"]
    list_filter = ["status"]
    # Status moves only through submit / accept / return (annotations.services), which check the row and
    # the version reviewed; the field and annotator are what the points belong to.
    readonly_fields = ["points", "version", "status", "field", "annotator"]


@admin.register(AnnotationRevision)
class AnnotationRevisionAdmin(ReadOnlyRecordAdmin):
    """Read-only history."""

    list_display = ["session", "version", "saved_by", "source", "saved_at"]
