"""Audit trail (django-auditlog): who registered or activated which detector, and when."""

from auditlog.registry import auditlog

from analysis.models import ActiveModel, AnalysisJob, ModelEvaluation, ModelPromotion, ModelVersion

auditlog.register(ModelVersion)
auditlog.register(ActiveModel)
auditlog.register(ModelEvaluation, exclude_fields=["candidate_scores", "baseline_scores"])
auditlog.register(ModelPromotion)
auditlog.register(AnalysisJob, exclude_fields=["tiles_done", "batches_done", "timings"])
