from django.db import models

# The tissue vocabulary (what a slide shows, which tumour) is defined in the analysis layer, below
# cases, because models and training name it too; the clinical record uses the same classes.
from analysis.choices import Indication, Marker  # noqa: F401


class Role(models.TextChoices):
    """Django groups that carry each persona's permissions."""

    PATHOLOGIST = "pathologist", "Pathologist"
    ANNOTATOR = "annotator", "Annotator"
    CLINICIAN = "clinician", "Clinician"
    ADMIN = "admin", "Administrator"


class Sex(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


class AssayClone(models.TextChoices):
    C22C3 = "22C3", "22C3"
    SP263 = "SP263", "SP263"
    SP142 = "SP142", "SP142"
    C28_8 = "28-8", "28-8"
    OTHER = "other", "Other"


class CaseStatus(models.TextChoices):
    REGISTERED = "registered", "Registered"
    ANALYSING = "analysing", "Analysing"
    IN_REVIEW = "in_review", "In review"
    SIGNED = "signed", "Signed"
    CLOSED = "closed", "Closed"


class MppSource(models.TextChoices):
    SCANNER = "scanner", "From the scanner's metadata"
    USER = "user", "Set by a user"
    MISSING = "missing", "Missing: set it before analysis"


class SlideQcStatus(models.TextChoices):
    """Slide check before scoring (analysis.slide_qc): brightfield, tissue, haematoxylin and DAB."""

    UNCHECKED = "unchecked", "Not checked yet (checked when analysed)"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    OVERRIDDEN = "overridden", "Failed, overridden by a pathologist"


class ReportStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SIGNED = "signed", "Signed"
    AMENDED = "amended", "Amended (superseded)"


class ScoreType(models.TextChoices):
    TPS = "TPS", "Tumour proportion score (TPS)"
    CPS = "CPS", "Combined positive score (CPS)"


class DocumentKind(models.TextChoices):
    """The documents stored for a signed report version (rendered once, at signing)."""

    PDF = "pdf", "PDF"
    FHIR = "fhir", "FHIR R4 JSON"
