from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote

from analysis.admin import ReadOnlyRecordAdmin
from cases.audit import log_access
from cases.forms import SlideAdminForm
from cases.models import Case, Cutoff, CutoffTable, Department, Patient, Report, ReportDocument, Slide, UserProfile


class AuditedAccessAdmin(admin.ModelAdmin):
    """Admin pages that show patient data log an ACCESS entry, like the app's own pages."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET":
            obj = self.get_object(request, unquote(object_id))
            if obj is not None:
                log_access(obj)
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


@admin.register(UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = ["user"]
    filter_horizontal = ["departments"]
    search_fields = ["user__username"]


@admin.register(Patient)
class PatientAdmin(AuditedAccessAdmin):
    list_display = ["mrn", "family_name", "given_name", "birth_date", "sex", "department"]
    list_filter = ["sex", "department"]
    search_fields = ["mrn", "family_name", "given_name"]
    filter_horizontal = ["clinicians"]


@admin.register(Case)
class CaseAdmin(AuditedAccessAdmin):
    list_display = ["accession", "patient", "indication", "assay_clone", "status", "department", "created_at"]
    list_filter = ["indication", "assay_clone", "status", "department"]
    search_fields = ["accession", "patient__mrn"]
    filter_horizontal = ["assigned_to"]
    raw_id_fields = ["patient"]


@admin.register(Slide)
class SlideAdmin(AuditedAccessAdmin):
    list_display = ["original_name", "case", "format", "width", "height", "mpp_x", "mpp_source", "created_at"]
    list_filter = ["format", "marker", "mpp_source"]
    search_fields = ["original_name", "sha256", "case__accession", "pseudo_id"]
    readonly_fields = ["sha256", "pseudo_id", "file", "size_bytes", "format", "vendor", "width", "height",
                       "level_count", "level_dimensions", "level_downsamples", "properties", "associated_images",
                       "thumbnail", "uploaded_by", "created_at"]
    raw_id_fields = ["case"]
    form = SlideAdminForm  # a move to another case is checked as at upload


class ReportDocumentInline(admin.TabularInline):
    """The stored PDF and FHIR of a signed version: shown by hash, never editable."""

    model = ReportDocument
    fields = readonly_fields = ["kind", "media_type", "sha256", "at_signing", "created_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Report)
class ReportAdmin(AuditedAccessAdmin):
    """Signed and superseded versions are read-only (the model refuses changes too)."""

    list_display = ["case", "version", "status", "signed_by", "signed_at"]
    list_filter = ["status"]
    # Every field, drafts' too: a draft changes only through its services (prepared from its analysis,
    # amended with a reason). Edited here, an amendment draft's case could be switched so that signing it
    # superseded another patient's report, or its reason blanked.
    fields = readonly_fields = ["case", "version", "status", "job", "scores", "comment", "amendment_reason",
                                "supersedes", "created_by", "created_at", "signed_by", "signed_at"]
    inlines = [ReportDocumentInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_locked:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_locked:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(ReportDocument)
class ReportDocumentAdmin(AuditedAccessAdmin):
    """Stored documents are listed by hash and never changed here (downloads go through the API)."""

    list_display = ["report", "kind", "sha256", "at_signing", "created_at"]
    list_filter = ["kind", "at_signing"]
    search_fields = ["sha256", "report__case__accession"]
    fields = readonly_fields = ["report", "kind", "media_type", "sha256", "at_signing", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CutoffRowsFormSet(forms.BaseInlineFormSet):
    """An approved table gives clinical categories: its rows start at 0 %, so every value has one."""

    def clean(self):
        super().clean()
        bounds = [form.cleaned_data["lower_bound"] for form in self.forms
                  if form.cleaned_data and not form.cleaned_data.get("DELETE") and
                  form.cleaned_data.get("lower_bound") is not None]
        if self.instance.approved and (not bounds or min(bounds) != 0):
            raise forms.ValidationError("An approved table needs a row with lower bound 0 (its lowest category): "
                                        "without it a value under the lowest bound has no category.")


class CutoffInline(admin.TabularInline):
    model = Cutoff
    formset = CutoffRowsFormSet
    extra = 1


@admin.register(CutoffTable)
class CutoffTableAdmin(admin.ModelAdmin):
    """Score interpretation per assay clone × indication × score type. Only approved tables give
    clinical categories; reports signed earlier keep the cut-offs they were signed with."""

    list_display = ["assay_clone", "indication", "score_type", "approved", "source", "updated_at"]
    list_filter = ["assay_clone", "indication", "score_type", "approved"]
    inlines = [CutoffInline]


@admin.register(Cutoff)
class CutoffAdmin(ReadOnlyRecordAdmin):
    """Rows are listed here and edited only within their table (CutoffTableAdmin), whose checks see every row:
    changed alone, an approved table's 0 row could be deleted or moved."""

    list_display = ["table", "lower_bound", "label"]
    list_filter = ["table__assay_clone", "table__indication", "table__score_type"]
