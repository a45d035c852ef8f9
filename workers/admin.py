from django.contrib import admin

from analysis.admin import ReadOnlyRecordAdmin

from .models import StageStart, TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyRecordAdmin):
    """Training runs are started and cancelled on the annotation project page; here they are only seen."""

    list_display = ("id", "status", "model_version", "created_at", "finished_at")


@admin.register(StageStart)
class StageStartAdmin(ReadOnlyRecordAdmin):
    """Which worker start holds a job's split or merge lease (workers.tasks): seen here, never edited."""

    list_display = ("job", "status", "attempt", "number")
