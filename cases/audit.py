"""Audit trail registration (django-auditlog).

Every change to a clinical model is logged with who, when and what changed. Views and downloads
of patient data are logged as ACCESS entries through `log_access`.
"""

from auditlog.registry import auditlog
from auditlog.signals import accessed

from cases.models import Case, Cutoff, CutoffTable, Department, Patient, Report, Slide, UserProfile

# A slide's reader properties are the file's metadata, not a change anyone makes; slides stored before
# they were filtered (slideio.slidefile.technical_properties) hold the patient's DICOM identity and file
# names there, which the entry of any later change or deletion would copy into the trail.
_EXCLUDED = {Slide: ["properties"]}

for model in (Department, UserProfile, Patient, Case, Slide, Report, CutoffTable, Cutoff):
    auditlog.register(model, m2m_fields=_m2m if (_m2m := {f.name for f in model._meta.many_to_many}) else None,
                      exclude_fields=_EXCLUDED.get(model))


def log_access(*instances):
    """Record that the current user (from the auditlog middleware) viewed or downloaded these."""
    for instance in instances:
        accessed.send(sender=instance.__class__, instance=instance)
