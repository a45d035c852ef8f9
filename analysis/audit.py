"""Audit trail (django-auditlog): who registered or activated which detector, and when."""

from auditlog.registry import auditlog

from analysis.models import ActiveModel, ModelVersion

auditlog.register(ModelVersion)
auditlog.register(ActiveModel)
