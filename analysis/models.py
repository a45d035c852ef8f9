"""Registered detector checkpoints and which one is active per (indication, marker).

A ModelVersion is immutable once trained (name, file, sha256 identify the
weights a result was computed with); activation is a separate row so that
switching models is a small audited change and never edits a version.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models, transaction

from cases.choices import Indication, Marker

from .choices import ModelOrigin

ANY_INDICATION = ""  # an ActiveModel with this indication applies when none is set for the case's


class ModelVersion(models.Model):
    name = models.SlugField(max_length=100, unique=True, help_text='e.g. "fcn-r18-starter-v1"')
    file = models.CharField(
        max_length=500, help_text="checkpoint path relative to MEDIA_ROOT, or absolute (the shipped starter)"
    )
    sha256 = models.CharField(max_length=64)
    arch = models.CharField(max_length=32)
    backbone = models.CharField(max_length=32, blank=True)
    mpp = models.FloatField(help_text="working resolution, µm/px: inputs are resampled to it")
    normalisation = models.JSONField(default=dict, help_text="mean/std applied to RGB in [0, 1]")
    metrics = models.JSONField(default=dict, blank=True, help_text="held-out metrics from the model card")
    training_data = models.JSONField(
        default=dict, blank=True, help_text="sources, counts, licences and whether any is SYNTHETIC"
    )
    origin = models.CharField(max_length=16, choices=ModelOrigin.choices, default=ModelOrigin.TRAINED)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def architecture(self) -> str:
        return f"{self.arch}-{self.backbone}" if self.backbone else self.arch

    @property
    def synthetic(self) -> bool:
        return bool(self.training_data.get("synthetic"))

    def path(self) -> Path:
        path = Path(self.file)
        return path if path.is_absolute() else Path(settings.MEDIA_ROOT) / path

    def activate(self, indication: str = ANY_INDICATION, marker: str = Marker.PDL1) -> ActiveModel:
        """Make this the model used for (indication, marker); replaces the previous one, if any."""
        if indication not in Indication.values and indication != ANY_INDICATION:
            raise ValueError(f"unknown indication {indication!r}")
        if marker not in Marker.values:
            raise ValueError(f"unknown marker {marker!r}")
        with transaction.atomic():
            # select_for_update + save (not update_or_create's bare update) so the audit log records the change.
            active = ActiveModel.objects.select_for_update().filter(indication=indication, marker=marker).first()
            if active is None:
                return ActiveModel.objects.create(indication=indication, marker=marker, model_version=self)
            active.model_version = self
            active.save()
            return active


class ActiveModel(models.Model):
    indication = models.CharField(
        max_length=32, choices=Indication.choices, blank=True, help_text="blank: any indication without its own"
    )
    marker = models.CharField(max_length=16, choices=Marker.choices, default=Marker.PDL1)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="activations")
    activated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["indication", "marker"], name="one_active_model_per_indication_marker")
        ]

    def __str__(self) -> str:
        return f"{self.indication or 'any indication'} / {self.marker}: {self.model_version}"
