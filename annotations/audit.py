"""Audit trail (django-auditlog) of annotation projects, fields and sessions.

Point sets are not diffed in the audit log (they can hold thousands of points): every saved
set is kept whole in AnnotationRevision, with who saved it and when.
"""

from auditlog.registry import auditlog

from annotations.models import AnnotationProject, AnnotationSession, Field

auditlog.register(AnnotationProject, m2m_fields={"annotators"})
auditlog.register(Field)
auditlog.register(AnnotationSession, exclude_fields=["points"])
