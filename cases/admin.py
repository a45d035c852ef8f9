from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.shortcuts import redirect
from django.urls import reverse

from analysis.admin import ReadOnlyRecordAdmin
from cases.audit import log_access
from cases.auth import do_revoke_tokens, token_expires_at
from cases.forms import SlideAdminForm
from cases.models import Case, Cutoff, CutoffTable, Department, Patient, Report, ReportDocument, Slide, UserProfile


class AuditedAccessAdmin(admin.ModelAdmin):
    """Admin pages that show patient data log an ACCESS entry, like the app's own pages: the list (one
    entry per row shown), an object's page, its history, its delete confirmation and an action's
    confirmation page (the bulk delete's)."""

    def accessed_with(self, obj) -> list:
        """What a row or page of `obj` shows: the object, and for some its patient."""
        return [obj]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:  # a page of rows (not a redirect after an action)
            log_access(*{shown for row in changelist.result_list for shown in self.accessed_with(row)})
        return response

    def response_action(self, request, queryset):
        response = super().response_action(request, queryset)
        selected = (getattr(response, "context_data", None) or {}).get("queryset")
        if selected is not None:  # an action's confirmation page ("Delete selected") names the selected rows
            log_access(*{shown for row in selected for shown in self.accessed_with(row)})
        return response

    def _log_object_page(self, request, object_id):
        if request.method == "GET":
            obj = self.get_object(request, unquote(object_id))
            if obj is not None and self.has_view_or_change_permission(request, obj):
                log_access(*self.accessed_with(obj))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._log_object_page(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._log_object_page(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._log_object_page(request, object_id)
        return super().delete_view(request, object_id, extra_context)


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

    def accessed_with(self, obj) -> list:
        return [obj, obj.patient]  # the list and the page name the patient (name and MRN)


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


# --- accounts and API tokens ----------------------------------------------------------------------

class KeepAccountsAdmin:
    """Mixed into the site's user admin: accounts are deactivated, never deleted, and an administrator
    can revoke their API tokens.

    Why no deletion: auditlog sets the actor of a deleted account's entries to NULL, so the trail would
    no longer link what was done to the account that did it (cases.audit.keep_actor_name keeps at least
    the name for accounts deleted outside the admin)."""

    def has_delete_permission(self, request, obj=None):
        return False

    def delete_view(self, request, object_id, extra_context=None):
        messages.error(request, "Accounts are not deleted: the audit trail names them for what they did. "
                                "Untick “Active” to deactivate the account instead (and revoke its API token).")
        opts = self.opts
        return redirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id],
                                current_app=self.admin_site.name))

    @admin.action(description="Revoke the selected accounts' API tokens", permissions=["change"])
    def revoke_api_tokens(self, request, queryset):
        revoked = sum(do_revoke_tokens(user) for user in queryset)  # each audited (cases.audit)
        self.message_user(request, f"Revoked {revoked} API token(s).", messages.SUCCESS)


def _keep_accounts(site: admin.AdminSite) -> None:
    """Wraps whichever admin the user model has (Django's, or a host project's own)."""
    user_model = get_user_model()
    if not site.is_registered(user_model):
        return
    registered = type(site.get_model_admin(user_model))
    if issubclass(registered, KeepAccountsAdmin):
        return
    site.unregister(user_model)
    actions = [*(registered.actions or []), "revoke_api_tokens"]
    site.register(user_model, type(registered.__name__, (KeepAccountsAdmin, registered), {"actions": actions}))


_keep_accounts(admin.site)


if apps.is_installed("rest_framework.authtoken"):
    from rest_framework.authtoken.models import TokenProxy

    if admin.site.is_registered(TokenProxy):
        # DRF's token admin lists every key: any administrator could copy one and act as its user.
        admin.site.unregister(TokenProxy)

    @admin.register(TokenProxy)
    class ApiTokenAdmin(admin.ModelAdmin):
        """Who has a live API token, since when and until when; never the key.

        No page of its own (its title would be the key: Token.__str__) and no add or change form; a
        token is revoked from the user list (KeepAccountsAdmin.revoke_api_tokens)."""

        list_display = ["user", "created", "expires"]
        list_display_links = None
        list_filter = ["created"]
        search_fields = [f"user__{get_user_model().USERNAME_FIELD}"]
        ordering = [f"user__{get_user_model().USERNAME_FIELD}"]
        actions = None  # TokenProxy's pk (the user id) does not select rows by key, the real primary key

        @admin.display(description="Expires")
        def expires(self, token):
            return token_expires_at(token)

        def has_view_permission(self, request, obj=None):
            return obj is None and super().has_view_permission(request)

        def has_add_permission(self, request):
            return False

        def has_change_permission(self, request, obj=None):
            return False

        def has_delete_permission(self, request, obj=None):
            return False
