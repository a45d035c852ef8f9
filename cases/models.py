"""The clinical record: departments, patients, cases, slides and their reports.

Access model (see README, "Access control"): every patient and case belongs to a department.
A user sees the cases of the departments they are a member of, plus the cases assigned to them
by name. Clinicians are linked to patients as treating clinicians and see only those patients'
signed reports. Annotators see slides only through their pseudonymous id.
"""

import uuid

from django.conf import settings
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from cases.choices import AssayClone, CaseStatus, Indication, Marker, MppSource, ReportStatus, ScoreType, Sex


class Department(models.Model):
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return self.name


class UserProfile(models.Model):
    """Department memberships of a user (the unit of object-level access)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    departments = models.ManyToManyField(Department, blank=True, related_name="members")

    def __str__(self):
        return f"Profile of {self.user}"


class Patient(models.Model):
    mrn = models.CharField("MRN", max_length=64, unique=True, help_text="Medical record number")
    family_name = models.CharField(max_length=120)
    given_name = models.CharField(max_length=120, blank=True)
    birth_date = models.DateField()
    sex = models.CharField(max_length=16, choices=Sex.choices, default=Sex.UNKNOWN)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="patients")
    clinicians = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="patients_under_care",
        help_text="Treating clinicians: they may download this patient's signed reports.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["family_name", "given_name", "mrn"]

    def __str__(self):
        return f"{self.family_name}, {self.given_name} ({self.mrn})"


class Case(models.Model):
    accession = models.CharField("accession number", max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="cases")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="cases")
    indication = models.CharField(max_length=32, choices=Indication.choices)
    assay_clone = models.CharField(max_length=16, choices=AssayClone.choices)
    specimen = models.CharField(max_length=200, blank=True, help_text="Specimen type and site")
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.REGISTERED)
    assigned_to = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="assigned_cases")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.accession

    def get_absolute_url(self):
        return reverse("cases:case-detail", args=[self.pk])


class Slide(models.Model):
    """A whole-slide image (or a single-level field). Its content's sha256 is not unique: the same
    file uploaded in two departments is two slides (see services.do_ingest_slide)."""

    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.PROTECT, related_name="slides")
    pseudo_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False,
                                 help_text="The only identifier annotators see.")
    file = models.FileField(max_length=500, help_text="Main file, relative to MEDIA_ROOT")
    original_name = models.CharField(max_length=255)
    file_count = models.PositiveIntegerField(default=1, help_text="More than 1 for a DICOM series")
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.BigIntegerField()
    format = models.CharField(max_length=32, help_text="Reader format, e.g. aperio, hamamatsu, dicom")
    vendor = models.CharField(max_length=64, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    level_count = models.PositiveSmallIntegerField()
    level_dimensions = models.JSONField(default=list)
    level_downsamples = models.JSONField(default=list)
    mpp_x = models.FloatField(null=True, blank=True, help_text="µm per pixel at level 0")
    mpp_y = models.FloatField(null=True, blank=True)
    mpp_source = models.CharField(max_length=16, choices=MppSource.choices, default=MppSource.MISSING)
    objective_power = models.FloatField(null=True, blank=True)
    marker = models.CharField(max_length=16, choices=Marker.choices, default=Marker.PDL1)
    properties = models.JSONField(default=dict, blank=True, help_text="Reader properties (vendor metadata)")
    associated_images = models.JSONField(default=list, blank=True)
    thumbnail = models.FileField(max_length=500, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.original_name} ({self.sha256[:10]})"

    @property
    def needs_mpp(self) -> bool:
        return self.mpp_x is None

    @property
    def path(self):
        """Absolute path of the main file, for slide readers."""
        return self.file.path

    def set_mpp(self, mpp_x: float, mpp_y: float | None = None):
        self.mpp_x = mpp_x
        self.mpp_y = mpp_y if mpp_y is not None else mpp_x
        self.mpp_source = MppSource.USER

    def get_absolute_url(self):
        return reverse("cases:slide-detail", args=[self.pk])


class ReportError(Exception):
    """A report action that is not allowed (wrong state, wrong password, missing reason): nothing changed."""


class ImmutableReport(ReportError):
    """A signed or superseded report version was about to be changed or deleted."""


class Report(models.Model):
    """A PD-L1 report version. Only signed versions ever reach clinicians.

    Life cycle: draft → signed (by a pathologist re-entering their password) → amended (superseded
    by a newer version, created with a reason, once that version is signed). A signed version never
    changes again: the only write allowed is the signed → amended status change.
    """

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="reports")
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.DRAFT)
    job = models.ForeignKey("analysis.AnalysisJob", null=True, blank=True, on_delete=models.PROTECT,
                            related_name="reports", help_text="the analysis whose (corrected) result is reported")
    scores = models.JSONField(default=dict, blank=True,
                              help_text="snapshot: counts, TPS/CPS with category and cut-offs used, adequacy")
    comment = models.TextField(blank=True)
    amendment_reason = models.TextField(blank=True)
    supersedes = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="superseded_by")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["case", "-version"]
        constraints = [models.UniqueConstraint(fields=["case", "version"], name="unique_report_version")]

    def __str__(self):
        return f"{self.case} v{self.version} ({self.status})"

    @property
    def is_locked(self) -> bool:
        return self.status in (ReportStatus.SIGNED, ReportStatus.AMENDED)

    # --- immutability guard -------------------------------------------------------------------

    def _changed_fields(self, stored) -> set[str]:
        return {f.attname for f in self._meta.concrete_fields
                if getattr(self, f.attname) != getattr(stored, f.attname)}

    def save(self, *args, **kwargs):
        if self.pk:
            stored = type(self).objects.filter(pk=self.pk).first()
            if stored is not None and stored.is_locked:
                changed = self._changed_fields(stored)
                superseding = (stored.status == ReportStatus.SIGNED and self.status == ReportStatus.AMENDED
                               and changed <= {"status"})
                if changed and not superseding:
                    raise ImmutableReport(f"report {stored} is {stored.status} and cannot be changed "
                                          f"({', '.join(sorted(changed))}); amend it instead")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.is_locked:
            raise ImmutableReport(f"report {self} is {self.status} and cannot be deleted")
        return super().delete(*args, **kwargs)

    # --- transitions --------------------------------------------------------------------------

    def sign(self, user, password: str):
        """draft → signed. The signer re-enters their password; a wrong one changes nothing."""
        if self.status != ReportStatus.DRAFT:
            raise ReportError(f"only a draft can be signed; this version is {self.get_status_display().lower()}")
        if not password or not user.check_password(password):
            raise ReportError("The password is incorrect: the report was not signed.")
        if not self.scores:
            raise ReportError("the draft has no scores to sign")
        with transaction.atomic():
            self.status, self.signed_by, self.signed_at = ReportStatus.SIGNED, user, timezone.now()
            self.save()
            if self.supersedes_id:
                previous = Report.objects.select_for_update().get(pk=self.supersedes_id)
                if previous.status == ReportStatus.SIGNED:
                    previous.status = ReportStatus.AMENDED
                    previous.save()
            case = self.case
            if case.status != CaseStatus.SIGNED:
                case.status = CaseStatus.SIGNED
                case.save(update_fields=["status", "updated_at"])  # audited, unlike a queryset update

    def amend(self, reason: str, user=None, comment: str | None = None) -> "Report":
        """A new draft version superseding this signed one; this one becomes amended once it is signed."""
        reason = (reason or "").strip()
        if not reason:
            raise ReportError("An amendment needs a reason.")
        if self.status != ReportStatus.SIGNED:
            raise ReportError("only the current signed version can be amended")
        if Report.objects.filter(supersedes=self).exists():
            raise ReportError("an amendment of this version is already in progress")
        latest = Report.objects.filter(case_id=self.case_id).order_by("-version").first()
        return Report.objects.create(
            case_id=self.case_id, version=latest.version + 1, job=self.job, scores=self.scores,
            comment=self.comment if comment is None else comment, amendment_reason=reason, supersedes=self,
            created_by=user,
        )

    @property
    def fhir_status(self) -> str:
        if self.status == ReportStatus.DRAFT:
            return "preliminary"
        if self.status == ReportStatus.AMENDED or self.supersedes_id:
            return "amended"
        return "final"


class CutoffTable(models.Model):
    """How a score is interpreted for one assay clone, indication and score type (admin-editable).

    Only an *approved* table gives a clinical category; otherwise reports say "research use".
    """

    assay_clone = models.CharField(max_length=16, choices=AssayClone.choices)
    indication = models.CharField(max_length=32, choices=Indication.choices)
    score_type = models.CharField(max_length=8, choices=ScoreType.choices, default=ScoreType.TPS)
    approved = models.BooleanField(default=False, help_text="validated for clinical reporting in this laboratory")
    source = models.CharField(max_length=300, blank=True, help_text="label or guideline the thresholds come from")
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["assay_clone", "indication", "score_type"]
        constraints = [models.UniqueConstraint(fields=["assay_clone", "indication", "score_type"],
                                               name="one_cutoff_table_per_assay_indication_score")]

    def __str__(self):
        return f"{self.assay_clone} / {self.get_indication_display()} / {self.score_type}"

    def as_dict(self) -> dict:
        return {"name": str(self), "approved": self.approved, "source": self.source,
                "cutoffs": [{"lower": c.lower_bound, "label": c.label} for c in self.cutoffs.all()]}


class Cutoff(models.Model):
    """One category: scores ≥ lower_bound (up to the next row's bound) get this label."""

    table = models.ForeignKey(CutoffTable, on_delete=models.CASCADE, related_name="cutoffs")
    lower_bound = models.FloatField(help_text="inclusive, in % (0 for the lowest category)")
    label = models.CharField(max_length=100)

    class Meta:
        ordering = ["table", "lower_bound"]
        constraints = [models.UniqueConstraint(fields=["table", "lower_bound"], name="unique_cutoff_bound")]

    def __str__(self):
        return f"{self.table}: ≥ {self.lower_bound:g}% → {self.label}"
