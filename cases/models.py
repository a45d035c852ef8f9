"""The clinical record: departments, patients, cases, slides and their reports.

Access model (see README, "Access control"): every patient and case belongs to a department.
A user sees the cases of the departments they are a member of, plus the cases assigned to them
by name. Clinicians are linked to patients as treating clinicians and see only those patients'
signed reports. Annotators see slides only through their pseudonymous id.
"""

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse

from cases.choices import AssayClone, CaseStatus, Indication, Marker, MppSource, ReportStatus, Sex


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
    """A whole-slide image (or a single-level field) stored once, keyed by its sha256."""

    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.PROTECT, related_name="slides")
    pseudo_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False,
                                 help_text="The only identifier annotators see.")
    file = models.FileField(max_length=500, help_text="Main file, relative to MEDIA_ROOT")
    original_name = models.CharField(max_length=255)
    file_count = models.PositiveIntegerField(default=1, help_text="More than 1 for a DICOM series")
    sha256 = models.CharField(max_length=64, unique=True)
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


class Report(models.Model):
    """A PD-L1 report version. Only signed versions ever reach clinicians."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="reports")
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.DRAFT)
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
