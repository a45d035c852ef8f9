"""Audit trail registration (django-auditlog).

Every change to a clinical model is logged with who, when and what changed. Views and downloads
of patient data are logged as ACCESS entries through `log_access`. Accounts, roles (groups) and
permissions are audited too, and so are API tokens issued and revoked: each of them decides who
may read and change the record.
"""

from auditlog.models import LogEntry
from auditlog.registry import auditlog
from auditlog.signals import accessed
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Q
from django.db.models.signals import post_delete, post_save, pre_delete

from cases.models import Case, Cutoff, CutoffTable, Department, Patient, Report, Slide, UserProfile

# A slide's reader properties are the file's metadata, not a change anyone makes; slides stored before
# they were filtered (slideio.slidefile.technical_properties) hold the patient's DICOM identity and file
# names there, which the entry of any later change or deletion would copy into the trail.
_EXCLUDED = {Slide: ["properties"]}


def _many_to_many(model) -> set[str] | None:
    return {f.name for f in model._meta.many_to_many} or None


for model in (Department, UserProfile, Patient, Case, Slide, Report, CutoffTable, Cutoff):
    auditlog.register(model, m2m_fields=_many_to_many(model), exclude_fields=_EXCLUDED.get(model))


def hide_secret(value: str) -> str:
    """auditlog's mask for the password: the entry says that it changed, never any part of the hash
    (the library's default mask keeps half of it)."""
    return "***"


def _register_accounts() -> None:
    """Who holds which role (group) and permission, superuser, staff and active flags included.

    last_login changes at every login and says nothing about rights; the password is recorded as changed
    only (an administrator setting someone's password is a way to act as them)."""
    user_model = get_user_model()
    if not auditlog.contains(user_model):  # a host project may register its own user model already
        field_names = {f.name for f in user_model._meta.get_fields()}
        auditlog.register(user_model, m2m_fields=_many_to_many(user_model),
                          exclude_fields=[name for name in ("last_login",) if name in field_names],
                          mask_fields=["password"], mask_callable="cases.audit.hide_secret")
    if not auditlog.contains(Group):
        auditlog.register(Group, m2m_fields={"permissions"})


_register_accounts()


def log_access(*instances):
    """Record that the current user (from the auditlog middleware) viewed or downloaded these."""
    for instance in instances:
        accessed.send(sender=instance.__class__, instance=instance)


# --- API tokens -----------------------------------------------------------------------------------
# A token is written to the trail as a change of its user, never as an entry of its own: the token's
# primary key is its secret, which auditlog would store as the entry's object_pk and object_repr.

def log_token_issued(sender, instance, created, **kwargs):
    if created:
        LogEntry.objects.log_create(instance.user, force_log=True, action=LogEntry.Action.UPDATE, changes={
            "api_token": ["", f"issued, expires {token_expires_at(instance).isoformat(timespec='seconds')}"]})


def log_token_revoked(sender, instance, **kwargs):
    """Revoked by an administrator, on a password change, or deleted when found expired."""
    LogEntry.objects.log_create(instance.user, force_log=True, action=LogEntry.Action.UPDATE, changes={
        "api_token": [f"issued {instance.created.isoformat(timespec='seconds')}", "revoked"]})


if apps.is_installed("rest_framework.authtoken"):
    from rest_framework.authtoken.models import Token

    from cases.auth import token_expires_at

    post_save.connect(log_token_issued, sender=Token, dispatch_uid="cases.audit.log_token_issued")
    post_delete.connect(log_token_revoked, sender=Token, dispatch_uid="cases.audit.log_token_revoked")


# --- deleted accounts -----------------------------------------------------------------------------

def keep_actor_name(sender, instance, **kwargs):
    """Before an account goes, its entries get its user name where they have no e-mail address.

    auditlog sets the entries' actor to NULL when the account is deleted and keeps only actor_email,
    which is empty for accounts without an address: the entries would no longer say who acted."""
    LogEntry.objects.filter(Q(actor_email__isnull=True) | Q(actor_email=""), actor=instance).update(
        actor_email=instance.get_username())


pre_delete.connect(keep_actor_name, sender=get_user_model(), dispatch_uid="cases.audit.keep_actor_name")
