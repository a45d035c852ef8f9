from django.urls import reverse
from rest_framework import serializers

from cases.access import filing_patients, may_refile, visible_cases, visible_patients
from cases.models import Case, Department, Patient, Report, ReportDocument, Slide
from cases.services import (
    IngestError,
    RegistrationRefused,
    check_accession_free,
    check_mrn_free,
    check_slide_case_change,
)


class DepartmentField(serializers.SlugRelatedField):
    """A department given by code; users may only file records into their own departments (and move
    one out of a department only as its member: MovesWithinOwnDepartments)."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="code", queryset=Department.objects.all(), **kwargs)

    def get_queryset(self):
        from cases.access import filing_departments

        return filing_departments(self.context["request"].user)


class MovesWithinOwnDepartments:
    """A record's department changes only by an administrator or a member of its current department."""

    def validate_department(self, department):
        current = getattr(self.instance, "department", None)
        if current is not None and department != current and not may_refile(self.context["request"].user, current):
            raise serializers.ValidationError(f"only members of department {current.code} move its records")
        return department


def _free_number(check, value, serializer):
    try:
        return check(value, serializer.context["request"].user, serializer.instance)
    except RegistrationRefused as exc:
        raise serializers.ValidationError(str(exc)) from None


class PatientSerializer(MovesWithinOwnDepartments, serializers.ModelSerializer):
    department = DepartmentField()

    class Meta:
        model = Patient
        fields = ["id", "mrn", "family_name", "given_name", "birth_date", "sex", "department", "created_at"]
        # Not DRF's unique check, whose message confirms another department's patient: validate_mrn.
        extra_kwargs = {"mrn": {"validators": []}}

    def validate_mrn(self, mrn):
        return _free_number(check_mrn_free, mrn, self)


class VisiblePatientField(serializers.PrimaryKeyRelatedField):
    def get_queryset(self):
        return visible_patients(self.context["request"].user)


class CaseSerializer(MovesWithinOwnDepartments, serializers.ModelSerializer):
    patient = VisiblePatientField()
    department = DepartmentField()
    slide_count = serializers.IntegerField(source="slides.count", read_only=True)

    class Meta:
        model = Case
        fields = [
            "id", "accession", "patient", "department", "indication", "assay_clone", "specimen",
            "status", "slide_count", "created_at", "updated_at",
        ]
        read_only_fields = ["status"]
        # Not DRF's unique check, whose message confirms another department's case: validate_accession.
        extra_kwargs = {"accession": {"validators": []}}

    def validate_accession(self, accession):
        return _free_number(check_accession_free, accession, self)

    def validate_patient(self, patient):
        if getattr(self.instance, "patient_id", None) != patient.pk and \
                not filing_patients(self.context["request"].user).filter(pk=patient.pk).exists():
            raise serializers.ValidationError("a case is filed for a patient of your own departments")
        return patient


class SlideSerializer(serializers.ModelSerializer):
    thumbnail_url = serializers.SerializerMethodField()
    needs_mpp = serializers.BooleanField(read_only=True)
    qc_status = serializers.CharField(read_only=True, help_text="check before scoring: unchecked, passed, failed, "
                                                                 "overridden (a failed slide feeds no signed report)")

    class Meta:
        model = Slide
        fields = [
            "id", "pseudo_id", "case", "original_name", "file_count", "sha256", "size_bytes", "format",
            "vendor", "width", "height", "level_count", "level_dimensions", "level_downsamples",
            "mpp_x", "mpp_y", "mpp_source", "needs_mpp", "objective_power", "marker",
            "associated_images", "thumbnail_url", "qc_status", "qc", "qc_override_reason", "created_at",
        ]
        read_only_fields = [f for f in fields if f not in ("case", "marker")]

    def get_fields(self):
        # A case the user may not see answers like a missing one ("Invalid pk"): ids are not probed.
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:
            fields["case"].queryset = visible_cases(request.user)
        return fields

    def validate_case(self, case):
        current = getattr(self.instance, "case", None)
        if current is not None and case != current and not may_refile(self.context["request"].user, current.department):
            raise serializers.ValidationError(f"only members of department {current.department.code} move its slides")
        if self.instance is not None:
            try:  # a DICOM naming another patient or accession is refused, as at upload
                check_slide_case_change(self.instance, case)
            except IngestError as exc:
                raise serializers.ValidationError(str(exc)) from None
        return case

    def get_thumbnail_url(self, slide) -> str:
        return reverse("api:slide-thumbnail", args=[slide.pk])


class SlideUploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), min_length=1,
                                  help_text="The slide file, or every file of a DICOM series")
    name = serializers.CharField(required=False, help_text="File name to store instead of the uploaded one")
    case = serializers.CharField(required=False, help_text="Case accession number")
    mpp = serializers.FloatField(required=False, help_text="µm per pixel, when the file has none")
    marker = serializers.CharField(required=False)


class SlideMppSerializer(serializers.Serializer):
    mpp_x = serializers.FloatField()
    mpp_y = serializers.FloatField(required=False, allow_null=True)


class PseudonymousSlideSerializer(serializers.ModelSerializer):
    """What annotators see: pixels and geometry, nothing that identifies a patient."""

    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Slide
        fields = ["pseudo_id", "format", "width", "height", "level_count", "level_dimensions", "mpp_x",
                  "mpp_y", "marker", "thumbnail_url"]

    def get_thumbnail_url(self, slide) -> str:
        return reverse("api:pseudo-slide-thumbnail", args=[slide.pseudo_id])


class ReportSerializer(serializers.ModelSerializer):
    """Reports are read-only through this serializer: drafts change only through the actions."""

    accession = serializers.CharField(source="case.accession", read_only=True)
    patient_mrn = serializers.CharField(source="case.patient.mrn", read_only=True)
    signed_by_name = serializers.SerializerMethodField()
    pdf_url = serializers.SerializerMethodField()
    fhir_url = serializers.SerializerMethodField()
    document_sha256 = serializers.SerializerMethodField(
        help_text="sha256 (hex) of the stored PDF and FHIR of a signed version, by kind; empty for a draft")

    class Meta:
        model = Report
        fields = ["id", "case", "accession", "patient_mrn", "version", "status", "job", "scores", "comment",
                  "amendment_reason", "supersedes", "signed_by", "signed_by_name", "signed_at", "created_at",
                  "pdf_url", "fhir_url", "document_sha256"]
        read_only_fields = fields

    def get_signed_by_name(self, report) -> str:
        user = report.signed_by
        return (user.get_full_name() or user.get_username()) if user else ""

    def get_pdf_url(self, report) -> str:
        return reverse("api:report-pdf", args=[report.pk])

    def get_fhir_url(self, report) -> str:
        return reverse("api:report-fhir", args=[report.pk])

    def get_document_sha256(self, report) -> dict[str, str]:
        return dict(ReportDocument.objects.filter(report=report).values_list("kind", "sha256"))


class ReportDraftSerializer(serializers.Serializer):
    case = serializers.IntegerField()
    job = serializers.IntegerField()
    comment = serializers.CharField(required=False, allow_blank=True)


class ReportSignSerializer(serializers.Serializer):
    password = serializers.CharField(trim_whitespace=False, style={"input_type": "password"})


class ReportAmendSerializer(serializers.Serializer):
    reason = serializers.CharField()
    comment = serializers.CharField(required=False, allow_blank=True)


class ReportCommentSerializer(serializers.Serializer):
    comment = serializers.CharField(allow_blank=True)
