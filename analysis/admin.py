from django import forms
from django.contrib import admin

from .choices import ModelStatus
from .models import ActiveModel, AnalysisJob, JobBatch, ModelEvaluation, ModelPromotion, ModelVersion


_RANK = {ModelStatus.RESEARCH: 0, ModelStatus.VALIDATED: 1, ModelStatus.CLINICAL: 2}


class ModelVersionForm(forms.ModelForm):
    class Meta:
        model = ModelVersion
        fields = "__all__"

    def clean_status(self):
        status = self.cleaned_data["status"]
        if _RANK[status] > _RANK[self.instance.status]:
            raise forms.ValidationError(
                "The admin only withdraws a model (lowers its status). It is released for clinical use by its "
                "promotion on the Models page: evaluated against the current default, with a reason.")
        try:
            self.instance.set_status(status)  # an active model cannot be withdrawn from clinical use
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return status


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    form = ModelVersionForm
    list_display = ("name", "status", "arch", "backbone", "mpp", "origin", "created_at")
    list_filter = ("status", "origin", "arch", "backbone")
    search_fields = ("name", "sha256")
    # Weights are identified by these, and what was measured and trained on belongs to those weights (the
    # reports and the SYNTHETIC label read them): edit a version by registering a new one.
    readonly_fields = ("name", "file", "sha256", "arch", "backbone", "mpp", "normalisation", "metrics", "training_data",
                       "origin", "created_at")


class ActiveModelForm(forms.ModelForm):
    """The admin's activation goes through ModelVersion.check_activation, as every other does: a default
    is a promoted model compared with the default it replaces."""

    class Meta:
        model = ActiveModel
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        version = cleaned.get("model_version")
        if version is not None and "indication" in cleaned and "marker" in cleaned:
            try:
                version.check_activation(cleaned["indication"], cleaned["marker"])
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return cleaned


@admin.register(ActiveModel)
class ActiveModelAdmin(admin.ModelAdmin):
    form = ActiveModelForm
    list_display = ("indication", "marker", "model_version", "activated_at")
    list_filter = ("marker",)
    autocomplete_fields = ("model_version",)


@admin.register(AnalysisJob)
class AnalysisJobAdmin(admin.ModelAdmin):
    list_display = ("id", "slide", "detector", "software_version", "status", "tiles_done", "tiles_total", "created_at")
    list_filter = ("status", "detector")
    raw_id_fields = ("slide", "model_version", "created_by")
    readonly_fields = ("detector", "model_version", "provenance", "software_version", "timings", "summary",
                       "result_file", "error")


@admin.register(JobBatch)
class JobBatchAdmin(admin.ModelAdmin):
    list_display = ("job", "index", "status", "attempts", "points", "seconds", "deadline")
    list_filter = ("status",)
    raw_id_fields = ("job",)


class ReadOnlyRecordAdmin(admin.ModelAdmin):
    """Records that are history: seen in the admin, made only by their own pages (promotion, training)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ModelEvaluation)
class ModelEvaluationAdmin(ReadOnlyRecordAdmin):
    list_display = ("id", "model_version", "created_at")


@admin.register(ModelPromotion)
class ModelPromotionAdmin(ReadOnlyRecordAdmin):
    list_display = ("id", "model_version", "from_status", "to_status", "promoted_by", "promoted_at")
