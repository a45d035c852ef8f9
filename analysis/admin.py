from django.contrib import admin

from .models import ActiveModel, ModelVersion


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
