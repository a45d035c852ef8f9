"""Audit trail (django-auditlog) for what crossed the boundary, like cases.audit for the clinical record."""

from auditlog.registry import auditlog

from integration.models import InboundMessage, OutboxMessage

# The raw bytes are kept in the rows themselves; the log records who/when/what changed, not the payloads.
for model in (InboundMessage, OutboxMessage):
    auditlog.register(model, exclude_fields=["raw", "answer", "payload"])
