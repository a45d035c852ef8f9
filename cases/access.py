"""Who may see what: roles from Django groups, objects from department membership.

Rules (documented in README, "Access control"):
- admin (group "admin" or superuser): everything;
- pathologist: patients and cases of their departments, plus cases assigned to them, and the
  slides and reports of those cases; slides they uploaded that belong to no case yet;
- annotator: slides of their departments' cases, through the pseudonymous view only;
- clinician: only signed reports of patients they treat.
"""

from django.db.models import Q, QuerySet

from cases.choices import ReportStatus, Role
from cases.models import Case, Department, Patient, Report, Slide


def roles_of(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    if not hasattr(user, "_pdl1_roles"):
        roles = set(user.groups.filter(name__in=Role.values).values_list("name", flat=True))
        if user.is_superuser:
            roles.add(Role.ADMIN)
        user._pdl1_roles = roles
    return user._pdl1_roles


def has_role(user, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


def is_admin(user) -> bool:
    return has_role(user, Role.ADMIN)


def user_departments(user) -> QuerySet[Department]:
    """The departments `user` is a member of: the one definition every app uses (none without a profile)."""
    return user.profile.departments.all() if hasattr(user, "profile") else Department.objects.none()


def filing_departments(user) -> QuerySet[Department]:
    """Departments `user` may file patients and cases into: every one for admins, else their own."""
    return Department.objects.all() if is_admin(user) else user_departments(user)


def may_refile(user, department) -> bool:
    """Whether `user` may move a record out of `department` (or file a new case for its patient):
    administrators and that department's members.  A pathologist who sees another department's case
    because it is assigned to them reads and works on it, but never takes it, its patient or its
    slides into their own department."""
    return is_admin(user) or (department is not None and user_departments(user).filter(pk=department.pk).exists())


def filing_patients(user) -> QuerySet[Patient]:
    """Patients `user` may open a case for: those of their departments (every one for admins)."""
    return Patient.objects.all() if is_admin(user) else Patient.objects.filter(department__in=user_departments(user))


def visible_cases(user) -> QuerySet[Case]:
    if is_admin(user):
        return Case.objects.all()
    if has_role(user, Role.PATHOLOGIST):
        return Case.objects.filter(Q(department__in=user_departments(user)) | Q(assigned_to=user)).distinct()
    return Case.objects.none()


def visible_patients(user) -> QuerySet[Patient]:
    if is_admin(user):
        return Patient.objects.all()
    if has_role(user, Role.PATHOLOGIST):
        return Patient.objects.filter(
            Q(department__in=user_departments(user)) | Q(cases__assigned_to=user)
        ).distinct()
    return Patient.objects.none()


def visible_slides(user) -> QuerySet[Slide]:
    """Slides with their clinical context (never for annotators: see pseudonymous_slides)."""
    if is_admin(user):
        return Slide.objects.all()
    if has_role(user, Role.PATHOLOGIST):
        return Slide.objects.filter(
            Q(case__in=visible_cases(user)) | Q(case__isnull=True, uploaded_by=user)
        ).distinct()
    return Slide.objects.none()


def pseudonymous_slides(user) -> QuerySet[Slide]:
    """Slides an annotator (or a pathologist preparing annotation work) may label."""
    if is_admin(user):
        return Slide.objects.all()
    if has_role(user, Role.PATHOLOGIST):
        return visible_slides(user)
    if has_role(user, Role.ANNOTATOR):
        return Slide.objects.filter(case__department__in=user_departments(user))
    return Slide.objects.none()


def visible_reports(user) -> QuerySet[Report]:
    if is_admin(user):
        return Report.objects.all()
    filters = Q(pk__in=[])
    if has_role(user, Role.PATHOLOGIST):
        filters |= Q(case__in=visible_cases(user))
    if has_role(user, Role.CLINICIAN):
        filters |= Q(status=ReportStatus.SIGNED, case__patient__clinicians=user)
    return Report.objects.filter(filters).distinct()


def can_edit_clinical_record(user) -> bool:
    return has_role(user, Role.ADMIN, Role.PATHOLOGIST)
