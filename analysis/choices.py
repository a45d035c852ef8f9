"""Choices of the analysis app (kept apart from models so compute modules can import them cheaply)."""

from django.db import models


class Indication(models.TextChoices):
    """Tumour type of a case (and of the data a model was trained for)."""

    LUNG_SQUAMOUS = "lung_squamous", "Lung squamous cell carcinoma"
    LUNG_NONSQUAMOUS = "lung_nonsquamous", "Non-squamous non-small cell lung carcinoma (NSCLC)"
    BREAST_DUCTAL = "breast_ductal", "Breast ductal carcinoma"
    OTHER = "other", "Other"


class Marker(models.TextChoices):
    """What a slide is stained for."""

    PDL1 = "PD-L1", "PD-L1"
    KI67 = "Ki67", "Ki67"
    HE = "H&E", "H&E"
    OTHER = "other", "Other"


# Not a network: the classic colour-deconvolution pipeline (analysis.classic).
CLASSIC_DETECTOR = "classic"


class ModelOrigin(models.TextChoices):
    TRAINED = "trained", "Trained here (train_detector)"
    SHIPPED = "shipped", "Shipped with the platform (starter)"
    IMPORTED = "imported", "Imported checkpoint"


class ModelStatus(models.TextChoices):
    """How far a registered model may be used: research models run only from the research CLI
    (detect_nuclei, evaluate_detector, analyze_slide); clinical jobs (web, API) take classic or a
    model promoted to clinical use."""

    RESEARCH = "research", "Research use only"
    VALIDATED = "validated", "Validated, not yet released for clinical use"
    CLINICAL = "clinical", "Released for clinical use"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    MERGING = "merging", "Merging"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_JOB_STATUSES = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


class BatchStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    LEASED = "leased", "Being detected"
    DONE = "done", "Done"
