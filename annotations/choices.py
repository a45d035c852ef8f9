from django.db import models

from analysis.labels import LABEL_HEX, LABEL_NAMES, NEGATIVE, POSITIVE


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


# The two labels every project has (the detector's classes, with the names and colours of the one
# vocabulary, analysis.labels); extra labels are optional.
POSITIVE_LABEL = {"name": LABEL_NAMES[POSITIVE], "title": "PD-L1-positive tumour nucleus", "colour": LABEL_HEX[POSITIVE]}
NEGATIVE_LABEL = {"name": LABEL_NAMES[NEGATIVE], "title": "PD-L1-negative tumour nucleus", "colour": LABEL_HEX[NEGATIVE]}
DEFAULT_LABELS = [POSITIVE_LABEL, NEGATIVE_LABEL]


def shown_labels(labels: list[dict]) -> list[dict]:
    """A project's labels as pages and the API show them. Positive and negative take the colours of the one
    vocabulary (analysis.labels), as the viewer and the GeoJSON export do: a project made before it stored the
    colours of that time (#ff0000, #ffff00), and its annotators and reviewers saw another red and yellow than
    the viewer's. Extra labels keep the project's own colour."""
    from analysis.labels import LABEL_CODES

    return [{"name": lab["name"], "title": lab.get("title", lab["name"]),
             "colour": LABEL_HEX[LABEL_CODES[lab["name"]]] if lab["name"] in LABEL_CODES
             else lab.get("colour", "#888888")} for lab in labels]
TRAINING_LABELS = (LABEL_NAMES[POSITIVE], LABEL_NAMES[NEGATIVE])  # the only labels analysis.datasets reads
# Colours an extra label may not come near (RGB distance): the two classes' own, and red / yellow as
# projects made before the shared vocabulary showed them.  A red "immune" point reads as PD-L1-positive.
RESERVED_COLOURS = [LABEL_HEX[POSITIVE], LABEL_HEX[NEGATIVE], "#ff0000", "#ffff00"]
RESERVED_COLOUR_DISTANCE = 80
