"""Audit trail (django-auditlog): who registered or activated which detector, and when."""

from auditlog.registry import auditlog

from analysis.models import ActiveModel, AnalysisJob, ModelVersion

auditlog.register(ModelVersion)
auditlog.register(ActiveModel)
auditlog.register(AnalysisJob, exclude_fields=["tiles_done", "batches_done", "timings"])
