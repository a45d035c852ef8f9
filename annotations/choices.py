from django.db import models


class SessionStatus(models.TextChoices):
    ASSIGNED = "assigned", "Assigned"
    IN_PROGRESS = "in_progress", "In progress"
    SUBMITTED = "submitted", "Submitted"
    ACCEPTED = "accepted", "Accepted"
    RETURNED = "returned", "Returned for changes"


EDITABLE_STATUSES = (SessionStatus.ASSIGNED, SessionStatus.IN_PROGRESS, SessionStatus.RETURNED)


class FieldSource(models.TextChoices):
    DRAWN = "drawn", "Drawn region"
    SAMPLED = "sampled", "Sampled from tissue"


# The two labels every project has (the detector's classes); extra labels are optional.
POSITIVE_LABEL = {"name": "positive", "title": "PD-L1-positive tumour nucleus", "colour": "#ff0000"}
NEGATIVE_LABEL = {"name": "negative", "title": "PD-L1-negative tumour nucleus", "colour": "#ffff00"}
DEFAULT_LABELS = [POSITIVE_LABEL, NEGATIVE_LABEL]
TRAINING_LABELS = ("positive", "negative")  # the only labels analysis.datasets reads
