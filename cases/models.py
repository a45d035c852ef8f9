"""The clinical record: departments, patients, cases, slides and their reports.

Access model (see README, "Access control"): every patient and case belongs to a department.
A user sees the cases of the departments they are a member of, plus the cases assigned to them
by name. Clinicians are linked to patients as treating clinicians and see only those patients'
signed reports. Annotators see slides only through their pseudonymous id.
"""

import hashlib
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from analysis.scoring import BELOW_TABLE
from cases.choices import (
    AssayClone,
    CaseStatus,
    DocumentKind,
    Indication,
    Marker,
    MppSource,
    ReportStatus,
    ScoreType,
    Sex,
    SlideQcStatus,
)
from cases.signals import report_documents, report_signed


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


class RecordLocked(Exception):
    """A field that a signed report states was about to change outside an amendment: nothing changed."""


class StatedInSignedReports:
    """Mixin for records whose fields a signed report states (the patient's identity, the case).

    Those fields change only while every current signed report stating them has an amendment open
    (Report.amend: a new draft with a reason). The stored documents of signed versions never change
    either way; the lock keeps the record from silently disagreeing with what was signed. Checked in
    save() (API, shell, everything) and in clean() (admin and other model forms, as a form error).
    """

    REPORTED_FIELDS: tuple[str, ...] = ()
    # Reported fields that never change once a report stating them was signed, amendment or not.
    FIXED_ONCE_SIGNED: tuple[str, ...] = ()

    def locking_reports(self):
        """Current signed versions that state this record's fields and have no amendment open."""
        raise NotImplementedError

    def fixed_field_refusal(self, changed: list[str]) -> str:
        """Why the FIXED_ONCE_SIGNED fields among `changed` cannot change ('' when they may)."""
        return ""

    def reported_changes(self) -> list[str]:
        """The reported fields whose values differ from the stored row."""
        if self._state.adding or self.pk is None:
            return []
        attnames = [self._meta.get_field(name).attname for name in self.REPORTED_FIELDS]
        # Row lock (inside save's transaction): a signing of this record cannot interleave with the check.
        stored = type(self).objects.select_for_update().filter(pk=self.pk).values(*attnames).first()
        if stored is None:
            return []
        return [name for name, attname in zip(self.REPORTED_FIELDS, attnames)
                if getattr(self, attname) != stored[attname]]

    def check_reported_fields(self):
        changed = self.reported_changes()
        if not changed:
            return
        refusal = self.fixed_field_refusal([name for name in changed if name in self.FIXED_ONCE_SIGNED])
        if refusal:
            raise RecordLocked(refusal)
        blocking = list(self.locking_reports().select_related("case").order_by("pk")[:5])
        if blocking:
            names = ", ".join(str(self._meta.get_field(name).verbose_name) for name in changed)
            versions = ", ".join(f"{r.case.accession} v{r.version}" for r in blocking)
            raise RecordLocked(
                f"{names}: stated by the signed report {versions}. Start an amendment of that report "
                "(with a reason) before changing what it states.")

    def clean(self):
        super().clean()
        try:
            with transaction.atomic():
                self.check_reported_fields()
        except RecordLocked as exc:
            raise ValidationError(str(exc)) from None

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        with transaction.atomic():
            if update_fields is None or set(update_fields) & set(self.REPORTED_FIELDS):
                self.check_reported_fields()
            super().save(*args, **kwargs)


class Patient(StatedInSignedReports, models.Model):
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

    REPORTED_FIELDS = ("mrn", "family_name", "given_name", "birth_date", "sex")

    class Meta:
        ordering = ["family_name", "given_name", "mrn"]

    def __str__(self):
        return f"{self.family_name}, {self.given_name} ({self.mrn})"

    def locking_reports(self):
        return Report.objects.filter(case__patient_id=self.pk, status=ReportStatus.SIGNED,
                                     superseded_by__isnull=True)


class Case(StatedInSignedReports, models.Model):
    accession = models.CharField("accession number", max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="cases")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="cases")
    indication = models.CharField(max_length=32, choices=Indication.choices)
    assay_clone = models.CharField(max_length=16, choices=AssayClone.choices)
    specimen = models.CharField(max_length=200, blank=True, help_text="Specimen type and site")
    # An order sent first with the ordering system's number alone (filed under it as the accession) and again
    # with the laboratory's filler number is found by it: one order, one case.
    placer_order = models.CharField(
        "placer order number", max_length=64, blank=True,
        help_text="The ordering system's number of the order (HL7 ORC-2, FHIR identifier PLAC)")
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.REGISTERED)
    assigned_to = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="assigned_cases")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    REPORTED_FIELDS = ("accession", "patient", "specimen", "indication", "assay_clone")
    # A signed version is the record of the patient it names, and its clinicians read it by the case's
    # patient (cases.access.visible_reports): moved under an amendment, the case would take that record
    # to another patient's clinicians and away from its own. The patient's identity (a misspelt name, a
    # wrong birth date) is corrected on the patient under an amendment; a case filed under the wrong
    # patient is reported again as a new case of the right one.
    FIXED_ONCE_SIGNED = ("patient",)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["placer_order"], condition=~models.Q(placer_order=""),
                                               name="case_placer_order_unique")]

    def __str__(self):
        return self.accession

    def get_absolute_url(self):
        return reverse("cases:case-detail", args=[self.pk])

    def locking_reports(self):
        return Report.objects.filter(case_id=self.pk, status=ReportStatus.SIGNED, superseded_by__isnull=True)

    def signed_reports(self):
        """Every version ever signed (current or superseded): what the case's patient is fixed by."""
        return Report.objects.filter(case_id=self.pk, status__in=(ReportStatus.SIGNED, ReportStatus.AMENDED))

    def fixed_field_refusal(self, changed: list[str]) -> str:
        if "patient" not in changed:
            return ""
        signed = list(self.signed_reports().order_by("version").values_list("version", flat=True)[:5])
        if not signed:
            return ""
        stored = Patient.objects.filter(cases__pk=self.pk).values_list("mrn", flat=True).first()
        versions = ", ".join(f"v{v}" for v in signed)
        return (f"patient: case {self.accession} has a signed report ({versions}) issued for patient MRN {stored}, "
                "and a case stays with the patient its reports were signed for, even under an amendment (its "
                "signed versions stay that patient's record, read by that patient's clinicians). If the case "
                "was filed under the wrong patient: register a new case for the right patient, upload its "
                "slides there again and report it there; then amend this case's report, with the reason, so "
                "that its readers see the correction. A misspelt name or wrong birth date of the same patient "
                "is corrected on the patient, under an amendment.")


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
    qc = models.JSONField(default=dict, blank=True,
                          help_text="check before scoring (analysis.slide_qc): passed, findings, tissue threshold")
    qc_override_reason = models.TextField(blank=True, help_text="why a pathologist scores a slide that failed its check")
    qc_override_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+")
    qc_override_at = models.DateTimeField(null=True, blank=True)
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

    # --- the case a signed report filed it under --------------------------------------------------

    def check_case_move(self):
        """A slide that a signed (or since amended) report states stays in that report's case: moved, the
        report's amendments would score another patient's case's slide. Raises RecordLocked."""
        if self._state.adding or self.pk is None:
            return
        stored = type(self).objects.filter(pk=self.pk).values_list("case_id", flat=True).first()
        if stored == self.case_id:
            return
        stating = list(Report.objects.filter(job__slide_id=self.pk, status__in=(ReportStatus.SIGNED, ReportStatus.AMENDED))
                       .select_related("case").order_by("pk")[:5])
        if stating:
            versions = ", ".join(f"{r.case.accession} v{r.version}" for r in stating)
            raise RecordLocked(f"case: this slide is stated by the signed report {versions} and stays with that "
                               "case; to file the same scan under another case, upload it there again.")

    def clean(self):
        super().clean()
        try:
            self.check_case_move()
        except RecordLocked as exc:
            raise ValidationError(str(exc)) from None

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if update_fields is None or {"case", "case_id"} & set(update_fields):
            self.check_case_move()
        super().save(*args, **kwargs)

    # --- check before scoring ---------------------------------------------------------------------

    @property
    def qc_status(self) -> str:
        if "passed" not in (self.qc or {}):
            return SlideQcStatus.UNCHECKED
        if self.qc["passed"]:
            return SlideQcStatus.PASSED
        return SlideQcStatus.OVERRIDDEN if self.qc_override_reason else SlideQcStatus.FAILED

    def get_qc_status_display(self) -> str:
        return SlideQcStatus(self.qc_status).label

    @property
    def qc_failures(self) -> list[str]:
        return [f["message"] for f in (self.qc or {}).get("findings", []) if not f.get("passed")]

    @property
    def qc_blocks_signing(self) -> bool:
        """A slide that failed its check feeds no signed report until a pathologist overrides it."""
        return self.qc_status == SlideQcStatus.FAILED

    def record_qc(self, qc: dict):
        """Store the check's result; an earlier override stands (same slide, same file)."""
        self.qc = {**qc, "checked_at": timezone.now().isoformat()}

    def override_qc(self, user, reason: str):
        reason = (reason or "").strip()
        if not reason:
            raise ValidationError("An override needs a reason.")
        if self.qc_status not in (SlideQcStatus.FAILED, SlideQcStatus.OVERRIDDEN):
            raise ValidationError("Only a slide that failed its check can be overridden.")
        self.qc_override_reason, self.qc_override_by, self.qc_override_at = reason, user, timezone.now()

    def qc_snapshot(self) -> dict:
        """What a report states about the slide's check (PDF and FHIR)."""
        snapshot = {"status": self.qc_status, "failures": self.qc_failures}
        if self.qc_override_reason:
            by = self.qc_override_by
            snapshot["override"] = {"reason": self.qc_override_reason,
                                    "by": (by.get_full_name() or by.get_username()) if by else "",
                                    "at": self.qc_override_at.isoformat() if self.qc_override_at else None}
        return snapshot


class ReportError(Exception):
    """A report action that is not allowed (wrong state, wrong password, missing reason): nothing changed."""


class ImmutableReport(ReportError):
    """A signed or superseded report version was about to be changed or deleted."""


class ReportConflict(ReportError):
    """The report changed since the caller loaded it (signed, or its draft prepared again, by someone else):
    nothing changed; the caller reloads it and decides again (HTTP 409 in the API)."""

    http_status = 409  # pdl1site.rest.exception_handler


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

    def state_slide_qc(self, slide: "Slide | None" = None) -> "Report":
        """A draft states its slide's check before scoring as it stands now, not as it stood when the draft
        was prepared: signing records it so (an override may follow the draft). Set on this object, not
        saved, so that the page or API showing the draft and the draft_fingerprint it sends read the check
        once and state the same one. A signed version keeps the check it recorded. Returns self."""
        if self.is_locked or not self.job_id or not self.scores:
            return self
        if slide is None:
            slide = Slide.objects.select_related("qc_override_by").get(pk=self.job.slide_id)
        self.scores = {**self.scores, "slide_qc": slide.qc_snapshot()}
        return self

    # --- immutability guard -------------------------------------------------------------------

    def _changed_fields(self, stored) -> set[str]:
        return {f.attname for f in self._meta.concrete_fields
                if getattr(self, f.attname) != getattr(stored, f.attname)}

    def save(self, *args, **kwargs):
        """The guard and the write are one: the stored row is read under a row lock (a signing in another
        transaction waits, or is waited for), and the UPDATE itself only matches a row still in the status
        the guard read (_do_update). An object loaded before a signing therefore never writes its stale
        fields over the signed row: it gets ImmutableReport (the guard saw the signature) or ReportConflict
        (the signature came between the guard and the write)."""
        with transaction.atomic():
            expected = None
            if self.pk:
                stored = type(self).objects.select_for_update().filter(pk=self.pk).first()
                if stored is not None:
                    if stored.is_locked:
                        changed = self._changed_fields(stored)
                        superseding = (stored.status == ReportStatus.SIGNED and self.status == ReportStatus.AMENDED
                                       and changed <= {"status"})
                        if changed and not superseding:
                            raise ImmutableReport(f"report {stored} is {stored.status} and cannot be changed "
                                                  f"({', '.join(sorted(changed))}); amend it instead")
                    expected = stored.status
            self._guarded_status = expected
            try:
                super().save(*args, **kwargs)
            finally:
                self._guarded_status = None

    def _do_update(self, base_qs, *args, **kwargs):
        # Django's UPDATE of an existing row (Model._save_table), restricted to the status save()'s guard
        # read: zero rows means the row changed status in between, and Django would fall back to an INSERT.
        expected = getattr(self, "_guarded_status", None)
        if expected is None:
            return super()._do_update(base_qs, *args, **kwargs)
        if super()._do_update(base_qs.filter(status=expected), *args, **kwargs):
            return True
        now = type(self).objects.filter(pk=self.pk).values_list("status", flat=True).first()
        raise ReportConflict(f"report {self.case} v{self.version} changed while it was being saved "
                             f"(it was {expected}, it is now {now or 'gone'}): nothing was saved; open it again")

    def delete(self, *args, **kwargs):
        with transaction.atomic():
            stored = type(self).objects.select_for_update().filter(pk=self.pk).first() if self.pk else None
            if self.is_locked or (stored is not None and stored.is_locked):
                raise ImmutableReport(f"report {stored or self} is {(stored or self).status} and cannot be deleted")
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
        tps_part = self.scores.get("tps") or {}
        if tps_part.get("status") == BELOW_TABLE:
            raise ReportError("The TPS is below the lowest cut-off of the case's table, which gives it no category: "
                              "correct the table (its rows start at 0), prepare the draft again, then sign.")
        if tps_part.get("cut_note"):
            raise ReportError(f"{tps_part['cut_note']} The report can be signed once the analysis is run again.")
        if self.supersedes_id:
            previous = Report.objects.filter(pk=self.supersedes_id).values_list("case_id", flat=True).first()
            if previous != self.case_id:
                raise ReportError("this amendment supersedes a report of another case: it cannot be signed")
            if not (self.amendment_reason or "").strip():
                raise ReportError("An amendment needs a reason: it cannot be signed without one.")
        if self.job_id:
            # The slide's check before scoring, as it stands now (an override may postdate the draft):
            # what the draft showed its signer (state_slide_qc), which reports.do_sign compared, the slide
            # row locked, through the draft_fingerprint.
            slide = Slide.objects.select_related("qc_override_by").get(pk=self.job.slide_id)
            if slide.qc_blocks_signing:
                raise ReportError("The slide failed its check before scoring (" + "; ".join(slide.qc_failures)
                                  + "): a pathologist must override it, with a reason, on the slide page "
                                    "before this report can be signed.")
            self.state_slide_qc(slide)
        with transaction.atomic():
            # Lock what the documents state: a concurrent edit waits for the signing, then meets the lock.
            case = Case.objects.select_for_update().select_related("patient").get(pk=self.case_id)
            list(Patient.objects.select_for_update().filter(pk=case.patient_id).values_list("pk", flat=True))
            self.case = case
            stale = [name for name in ("assay_clone", "indication")
                     if self.scores.get(name) not in (None, getattr(case, name))]
            if stale:
                raise ReportError(f"The case's {' and '.join(n.replace('_', ' ') for n in stale)} changed after "
                                  "this draft was prepared: prepare the draft again from the analysis, then sign.")
            self.status, self.signed_by, self.signed_at = ReportStatus.SIGNED, user, timezone.now()
            self.save()
            if self.supersedes_id:
                previous = Report.objects.select_for_update().get(pk=self.supersedes_id)
                if previous.status == ReportStatus.SIGNED:
                    previous.status = ReportStatus.AMENDED
                    previous.save()
            if case.status != CaseStatus.SIGNED:
                case.status = CaseStatus.SIGNED
                case.save(update_fields=["status", "updated_at"])  # audited, unlike a queryset update
            # The PDF and FHIR are rendered once, here, and served as stored from now on: a signing
            # that cannot render its documents does not happen (same transaction).
            # (cases.documents.store_at_signing, through the signal: the renderers import this module.)
            if not report_documents.has_listeners(Report):
                raise ReportError("the report's documents cannot be stored (the cases app is not ready)")
            report_documents.send(sender=Report, report=self)
            # Apps above cases (integration: the results outbox) act in this same transaction.
            report_signed.send(sender=Report, report=self)

    def amend(self, reason: str, user=None, comment: str | None = None, *, rescore) -> "Report":
        """A new draft version superseding this signed one; this one becomes amended once it is signed.

        rescore(case, job) -> scores: the service layer's snapshot (cases.reports.score_snapshot), since
        corrections and regions made since signing belong to the amendment."""
        reason = (reason or "").strip()
        if not reason:
            raise ReportError("An amendment needs a reason.")
        if self.status != ReportStatus.SIGNED:
            raise ReportError("only the current signed version can be amended")
        if Report.objects.filter(supersedes=self).exists():
            raise ReportError("an amendment of this version is already in progress")
        latest = Report.objects.filter(case_id=self.case_id).order_by("-version").first()
        scores = self.scores
        if self.job_id:  # corrections and regions made since signing belong to the amendment
            scores = rescore(self.case, self.job)
        return Report.objects.create(
            case_id=self.case_id, version=latest.version + 1, job=self.job, scores=scores,
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


class ReportDocument(models.Model):
    """The exact bytes served for a signed report version, with their sha256. Written once, never changed.

    Rendered in the signing transaction (at_signing). A version signed before documents were stored
    gets them at its first download (at_signing False), and keeps those from then on.
    """

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="documents")
    kind = models.CharField(max_length=8, choices=DocumentKind.choices)
    media_type = models.CharField(max_length=64)
    content = models.BinaryField()
    sha256 = models.CharField(max_length=64, editable=False)
    at_signing = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["report", "kind"]
        constraints = [models.UniqueConstraint(fields=["report", "kind"], name="one_document_per_report_kind")]

    def __str__(self):
        return f"{self.report} {self.kind} {self.sha256[:12]}"

    @property
    def data(self) -> bytes:
        return bytes(self.content)

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableReport(f"the stored {self.kind} of {self.report} cannot be changed")
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableReport(f"the stored {self.kind} of {self.report} cannot be deleted")


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

    def clean(self):
        from django.core.exceptions import ValidationError

        if self.lower_bound is None or not 0.0 <= self.lower_bound <= 100.0:
            raise ValidationError({"lower_bound": "a cut-off is a percentage from 0 to 100"})
