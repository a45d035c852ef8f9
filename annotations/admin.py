from django import forms
from django.contrib import admin

from django.db.models import Q

from analysis.admin import ReadOnlyRecordAdmin
from annotations import services
from annotations.models import AnnotationProject, AnnotationRevision, AnnotationSession, Field


def _not_blind(queryset, user, session_path: str):
    """Leave out the other annotators' sessions (and their history) of a field on which `user` still has an
    open session: the blind rule (services.blind_fields) holds in the admin as on the pages and the API."""
    prefix = f"{session_path}__" if session_path else ""
    hidden = Q(**{f"{prefix}field__in": services.blind_fields(user)}) & ~Q(**{f"{prefix}annotator": user})
    return queryset.exclude(hidden)


@admin.register(AnnotationProject)
class AnnotationProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "indication", "marker", "created_by", "created_at"]
    # Annotators are added on the project page (services.do_assign_annotators): it checks each one may see
    # every field's slide and gives them their sessions; an annotator added here got neither.
    readonly_fields = ["annotators"]

    def get_readonly_fields(self, request, obj=None):
        locked = []
        if obj is not None:
            # The marker says what "positive" means (a field's slide must be stained for it, and db:MARKER
            # trains on it); the labels are the vocabulary the saved points use.
            if obj.fields.exists():
                locked.append("marker")
            if AnnotationSession.objects.filter(field__project=obj).exists():
                locked += ["marker", "labels"]
        return [*super().get_readonly_fields(request, obj), *dict.fromkeys(locked)]


class FieldAdminForm(forms.ModelForm):
    """A field moved before anyone worked on it obeys the rules it was made under (services.do_create_field):
    inside its slide, on a slide of its project's marker, overlapping no other field of the project."""

    class Meta:
        model = Field
        fields = "__all__"

    def clean(self):
        from annotations import services

        data = super().clean()
        field = self.instance
        slide = data.get("slide", field.slide if field.slide_id else None)
        geometry = [data.get(k, getattr(field, k)) for k in ("x", "y", "width", "height")]
        if slide is None or any(v is None for v in geometry):
            return data
        try:
            region = services.check_region(slide, *geometry)
            services.check_field_slide(field.project, slide)
            services.check_no_overlap(field.project, slide, *region, exclude=field)
        except services.AnnotationError as exc:
            raise forms.ValidationError("; ".join(exc.problems) or str(exc)) from None
        return data


@admin.register(Field)
class FieldAdmin(admin.ModelAdmin):
    form = FieldAdminForm
    list_display = ["pk", "project", "slide", "x", "y", "width", "height", "source"]
    list_filter = ["source", "project"]
    # Once a session of the field has points (or has left "assigned") they are in this field's frame: moving
    # or resizing the field, or changing its slide or project, would put them outside it or on other tissue.
    GEOMETRY = ["project", "slide", "x", "y", "width", "height"]

    def has_add_permission(self, request):
        # Fields are made on the project page or the API (services.do_create_field): marker, region, overlap
        # and every annotator's session are checked and made there, not here.
        return False

    def get_readonly_fields(self, request, obj=None):
        # The project never changes here: its annotators' sessions come with the field.
        locked = self.GEOMETRY if obj is not None and obj.worked_on else ["project"]
        return [*super().get_readonly_fields(request, obj), *locked]


@admin.register(AnnotationSession)
class AnnotationSessionAdmin(admin.ModelAdmin):
    list_display = ["pk", "field", "annotator", "status", "version", "updated_at"]
    list_filter = ["status"]
    # Status moves only through submit / accept / return (annotations.services), which check the row and
    # the version reviewed; the field and annotator are what the points belong to.
    readonly_fields = ["points", "version", "status", "field", "annotator"]

    def has_add_permission(self, request):
        return False  # sessions come with fields and annotators (services.do_create_field, do_assign_annotators)

    def get_queryset(self, request):
        return _not_blind(super().get_queryset(request), request.user, "")


@admin.register(AnnotationRevision)
class AnnotationRevisionAdmin(ReadOnlyRecordAdmin):
    """Read-only history."""

    list_display = ["session", "version", "saved_by", "source", "saved_at"]

    def get_queryset(self, request):
        return _not_blind(super().get_queryset(request), request.user, "session")
