from django.contrib import admin

from analysis.admin import ReadOnlyRecordAdmin

from viewer.models import Correction, CorrectionSet, Region


@admin.register(CorrectionSet)
class CorrectionSetAdmin(admin.ModelAdmin):
    list_display = ["job", "version", "updated_by", "updated_at", "carried_from"]
    readonly_fields = ["job", "version", "updated_by", "updated_at", "carried_from", "carry_report"]


@admin.register(Correction)
class CorrectionAdmin(ReadOnlyRecordAdmin):
    """Read-only: corrections are history; undo is a correction of its own, made in the viewer."""

    list_display = ["job", "version", "op", "detection", "target", "label", "author", "created_at", "undone_by"]
    list_filter = ["op"]


@admin.register(Region)
class RegionAdmin(ReadOnlyRecordAdmin):
    """Read-only: regions are history; they are drawn and (soft-)deleted in the viewer."""

    list_display = ["slide", "drawn_on", "version", "kind", "author", "created_at", "deleted_version", "deleted_by"]
    list_filter = ["kind"]
