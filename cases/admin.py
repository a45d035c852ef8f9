from django.contrib import admin
from django.contrib.admin.utils import unquote

from cases.audit import log_access
from cases.models import Case, Department, Patient, Report, Slide, UserProfile


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


@admin.register(Report)
class ReportAdmin(AuditedAccessAdmin):
    list_display = ["case", "version", "status", "signed_by", "signed_at"]
    list_filter = ["status"]
    raw_id_fields = ["case"]
