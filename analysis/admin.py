from django.contrib import admin

from .models import ActiveModel, AnalysisJob, JobBatch, ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "arch", "backbone", "mpp", "origin", "created_at")
    list_filter = ("origin", "arch", "backbone")
    search_fields = ("name", "sha256")
    # Weights are identified by these: edit a version by registering a new one.
    readonly_fields = ("file", "sha256", "arch", "backbone", "mpp", "normalisation", "created_at")


@admin.register(ActiveModel)
class ActiveModelAdmin(admin.ModelAdmin):
    list_display = ("indication", "marker", "model_version", "activated_at")
    list_filter = ("marker",)
    autocomplete_fields = ("model_version",)


@admin.register(AnalysisJob)
class AnalysisJobAdmin(admin.ModelAdmin):
    list_display = ("id", "slide", "detector", "status", "tiles_done", "tiles_total", "created_at")
    list_filter = ("status", "detector")
    raw_id_fields = ("slide", "model_version", "created_by")
    readonly_fields = ("timings", "summary", "result_file", "error")


@admin.register(JobBatch)
class JobBatchAdmin(admin.ModelAdmin):
    list_display = ("job", "index", "status", "attempts", "points", "seconds", "deadline")
    list_filter = ("status",)
    raw_id_fields = ("job",)
