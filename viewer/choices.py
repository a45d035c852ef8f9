"""Choices of the viewer app (kept apart from models so compute code can import them cheaply)."""

from django.db import models

from analysis.labels import NEGATIVE, POSITIVE


class CorrectionOp(models.TextChoices):
    ADD = "add", "Add a cell the model missed"
    DELETE = "delete", "Delete a false detection"
    RECLASSIFY = "reclassify", "Change a cell's class"
    UNDO = "undo", "Undo an earlier correction"


class CellLabel(models.IntegerChoices):
    """Codes as in the detection store (analysis.labels)."""

    POSITIVE = POSITIVE, "positive"
    NEGATIVE = NEGATIVE, "negative"


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV (x,y,label)"
    GEOJSON = "geojson", "QuPath GeoJSON points"


class RegionKind(models.TextChoices):
    """Drawn regions: tumour area includes, the others exclude."""

    TUMOUR = "tumour", "tumour area (include)"
    NECROSIS = "necrosis", "necrosis (exclude)"
    ARTEFACT = "artefact", "artefact (exclude)"
    CONTROL = "control", "control tissue (exclude)"


INCLUDE_REGION_KINDS = frozenset({RegionKind.TUMOUR.value})
