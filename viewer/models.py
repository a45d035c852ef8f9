"""Pathologists' corrections of a job's detections.

Model detections stay in the job's detection store and are never modified; a correction is a
row on top of them, and the corrected result is always "store + active corrections". Nothing is
ever deleted: an undo is a correction of its own that marks its target as undone.
A per-job CorrectionSet carries the version counter used for optimistic concurrency.
"""

from django.conf import settings
from django.db import models

from viewer.choices import CellLabel, CorrectionOp, RegionKind


class CorrectionSet(models.Model):
    """Version counter of a job's corrections: each accepted correction increments it."""

    job = models.OneToOneField("analysis.AnalysisJob", on_delete=models.PROTECT, related_name="correction_set")
    version = models.PositiveIntegerField(default=0)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(null=True, blank=True)
    carried_from = models.ForeignKey("analysis.AnalysisJob", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+", help_text="the earlier run whose corrections were carried over")
    carry_report = models.JSONField(null=True, blank=True,
                                    help_text="what was carried over from the earlier run and what was not "
                                              "(viewer.carry); null: nothing to carry was looked for yet")

    def __str__(self):
        return f"Corrections of job {self.job_id} (v{self.version})"

    def is_stale(self, base_version: int) -> bool:
        return int(base_version) != self.version

    def bump(self, user, when) -> int:
        self.version += 1
        self.updated_by, self.updated_at = user, when
        return self.version


class Correction(models.Model):
    job = models.ForeignKey("analysis.AnalysisJob", on_delete=models.PROTECT, related_name="corrections")
    version = models.PositiveIntegerField(help_text="the CorrectionSet version this correction created")
    op = models.CharField(max_length=16, choices=CorrectionOp.choices)
    detection = models.BigIntegerField(null=True, blank=True,
                                       help_text="index of the model detection in the job's store (delete, reclassify)")
    target = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               help_text="an added point (delete, reclassify) or the correction undone (undo)")
    x = models.FloatField(null=True, blank=True, help_text="level-0 px (add)")
    y = models.FloatField(null=True, blank=True, help_text="level-0 px (add)")
    label = models.SmallIntegerField(choices=CellLabel.choices, null=True, blank=True)
    undone_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    carried_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                     help_text="the earlier run's correction this one carries over (viewer.carry)")

    class Meta:
        ordering = ["job", "version"]
        constraints = [models.UniqueConstraint(fields=["job", "version"], name="one_correction_per_job_version")]

    def __str__(self):
        return f"{self.op} (job {self.job_id}, v{self.version})"

    @property
    def is_active(self) -> bool:
        return self.undone_by_id is None and self.op != CorrectionOp.UNDO

    def mark_undone(self, undo: "Correction"):
        if self.undone_by_id is not None:
            raise ValueError(f"correction {self.pk} is already undone")
        self.undone_by = undo


class Region(models.Model):
    """A pathologist's include (tumour area) or exclude (necrosis, artefact, control tissue) polygon.

    Regions belong to the slide: every analysis of it, a re-run included, counts inside them. Scores
    count only points inside include regions (all points when there are none) and outside every
    exclude region. Creating or deleting one bumps the CorrectionSet version of the job it was drawn
    on (the same optimistic concurrency as corrections); deletion is soft: the row stays, with
    deleted_* set.
    """

    slide = models.ForeignKey("cases.Slide", on_delete=models.PROTECT, related_name="regions")
    drawn_on = models.ForeignKey("analysis.AnalysisJob", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+", help_text="the job whose viewer it was drawn in (its version counts there)")
    kind = models.CharField(max_length=16, choices=RegionKind.choices)
    vertices = models.JSONField(help_text="[[x, y], ...] level-0 px, at least 3, not closed, not self-intersecting")
    version = models.PositiveIntegerField(help_text="the version of drawn_on's CorrectionSet this region created")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_version = models.PositiveIntegerField(null=True, blank=True)
    deleted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slide", "created_at", "pk"]

    def __str__(self):
        return f"{self.kind} region (slide {self.slide_id}, v{self.version})"

    @property
    def is_active(self) -> bool:
        return self.deleted_at is None

    @property
    def includes(self) -> bool:
        return self.kind == RegionKind.TUMOUR


def _register_audit():
    # Here rather than in an audit module: viewer/apps.py stays as generated.
    from auditlog.registry import auditlog

    auditlog.register(Correction)
    auditlog.register(CorrectionSet)
    auditlog.register(Region)


_register_audit()
