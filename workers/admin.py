from django.contrib import admin

from analysis.admin import ReadOnlyRecordAdmin

from .models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyRecordAdmin):
    """Training runs are started and cancelled on the annotation project page; here they are only seen."""

    list_display = ("id", "status", "model_version", "created_at", "finished_at")
