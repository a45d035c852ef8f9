"""Registered detector checkpoints and which one is active per (indication, marker).

A ModelVersion is immutable once trained (name, file, sha256 identify the
weights a result was computed with); activation is a separate row so that
switching models is a small audited change and never edits a version.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from .choices import (
    CLASSIC_DETECTOR, FINAL_JOB_STATUSES, BatchStatus, Indication, JobStatus, Marker, ModelOrigin, ModelStatus,
)

log = logging.getLogger(__name__)


def software_version() -> str:
    from pdl1site import __version__

    return __version__


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
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.RESEARCH,
                              help_text="only clinical models run in jobs started from the web or the API")
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

    @property
    def clinical(self) -> bool:
        return self.status == ModelStatus.CLINICAL

    def set_status(self, status: str) -> None:
        """Promote (or withdraw) this version; the caller saves it (audited). A model active for
        some indication stays clinical: deactivate it first."""
        if status not in ModelStatus.values:
            raise ValueError(f"unknown model status {status!r}; choose from {', '.join(ModelStatus.values)}")
        if status != ModelStatus.CLINICAL and self.pk and self.activations.exists():
            raise ValueError(f"{self.name} is the active model for some indication: activate another one first")
        self.status = status

    def held_out_sources(self) -> list[tuple[str, int]]:
        """(source spec, held-out field count) of every training source its card counted val fields in."""
        sources = (self.training_data or {}).get("sources") or []
        return [(s["source"], int(s.get("fields", {}).get("val", 0))) for s in sources
                if isinstance(s, dict) and s.get("source") and int(s.get("fields", {}).get("val", 0)) > 0]

    def held_out_marker(self) -> str:
        """The marker its held-out fields are stained for (analysis.datasets.source_marker of each source its
        card counted val fields in, the marker the card recorded for it first): Ki-67 when they all are
        Ki-67's, PD-L1 when they all are, or are a mix with PD-L1 (SYNTHETIC + DeepLIIF: the set as a whole
        is PD-L1's, each source is scored with its own compartment). What it was measured on, so the only
        marker it may become the default of or analyse clinical slides of.

        analysis.datasets.UnknownMarker (a ValueError) when it cannot be told: no held-out fields recorded
        (an older registration), a folder whose manifest records no marker, or a mix without PD-L1."""
        from .datasets import UnknownMarker, source_marker

        sources = [s for s in (self.training_data or {}).get("sources") or []
                   if isinstance(s, dict) and s.get("source") and int(s.get("fields", {}).get("val", 0)) > 0]
        if not sources:
            raise UnknownMarker(f"{self.name} records no held-out fields in its training data, so not the marker "
                                "it was measured on")
        markers = {source_marker(s["source"], s.get("marker")) for s in sources}
        if len(markers) == 1:
            return markers.pop()
        if Marker.PDL1 in markers:
            return Marker.PDL1
        raise UnknownMarker(f"{self.name} was measured on fields of several markers ({', '.join(sorted(markers))})")

    def marker_refusal(self, marker: str) -> str:
        """Why this model may not compute a result on a slide stained for `marker` that could feed a signed
        report ('' when it may): it was measured (and promoted) on another marker's fields, or the marker it was
        measured on is unknown (held_out_marker): it was validated for no marker, so for none."""
        from .datasets import UnknownMarker

        try:
            measured = self.held_out_marker()
        except UnknownMarker as exc:
            return (f"Model {self.name} is of unknown marker ({exc}): it analyses no slide for clinical use. "
                    "Use classic or a model measured on fields of the slide's marker.")
        if measured != marker:
            return (f"Model {self.name} was measured on {measured} fields: it cannot analyse a slide stained for "
                    f"{marker} for clinical use. Use classic or a model measured on {marker} fields.")
        return ""

    def check_activation(self, indication: str = ANY_INDICATION, marker: str = Marker.PDL1) -> None:
        """ValueError saying why this version may not become the default of (indication, marker) now.

        A default decides the number of every clinical job that does not name a detector, so it must be
        a model released by promotion (analysis.promotion) whose recorded evaluation compared it with
        the default it replaces: being clinical (selectable by name) is not enough (a model set clinical
        without a promotion, as the shipped starter was before it was registered as research, is never
        made the default this way)."""
        if not self.clinical:
            raise ValueError(f"{self.name} is {self.get_status_display().lower()}: promote it to clinical first")
        if indication not in Indication.values and indication != ANY_INDICATION:
            raise ValueError(f"unknown indication {indication!r}")
        if marker not in Marker.values:
            raise ValueError(f"unknown marker {marker!r}")
        if self.held_out_marker() != marker:  # UnknownMarker (a ValueError) when it cannot be told
            raise ValueError(f"{self.name} was evaluated on fields stained for another marker than {marker}: it cannot "
                             f"be made the default for {indication or 'any indication'} / {marker}.")
        current = ActiveModel.current(indication or None, marker)
        if current is not None and current.pk == self.pk:
            return
        replaced = (current.name, current.sha256) if current is not None else (CLASSIC_DETECTOR, "")
        where = f"{indication or 'any indication'} / {marker}"
        if not self.promotions.exists():
            raise ValueError(f"{self.name} has no promotion record (it was never evaluated against the default and "
                             f"released with a reason on the Models page): it cannot be made the default for {where}.")
        if not self.promotions.filter(evaluation__marker=marker).exists():
            raise ValueError(f"{self.name} was evaluated on fields stained for another marker than {marker}: it cannot "
                             f"be made the default for {where}.")
        if not self.promotions.filter(evaluation__marker=marker, evaluation__baseline=replaced[0],
                                      evaluation__baseline_sha256=replaced[1]).exists():
            raise ValueError(f"{self.name} was promoted on an evaluation against another detector than {replaced[0]}, "
                             f"the default for {where} now: it cannot replace a default it was not compared with.")

    def activate(self, indication: str = ANY_INDICATION, marker: str = Marker.PDL1) -> ActiveModel:
        """Make this the model used for (indication, marker); replaces the previous one, if any
        (check_activation says when it may)."""
        with transaction.atomic():
            self.check_activation(indication, marker)
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
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="activations",
                                      limit_choices_to={"status": ModelStatus.CLINICAL})
    activated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["indication", "marker"], name="one_active_model_per_indication_marker")
        ]

    def __str__(self) -> str:
        return f"{self.indication or 'any indication'} / {self.marker}: {self.model_version}"

    @classmethod
    def current(cls, indication: str | None, marker: str = Marker.PDL1) -> ModelVersion | None:
        """The clinical model activated for (indication, marker), else for (any indication, marker). A model
        measured on another marker's fields (activated before activation checked it) is passed over, logged."""
        for key in ([indication] if indication else []) + [ANY_INDICATION]:
            active = (cls.objects.select_related("model_version")
                      .filter(indication=key, marker=marker, model_version__status=ModelStatus.CLINICAL).first())
            if active is None:
                continue
            refusal = active.model_version.marker_refusal(marker)
            if refusal:
                log.error("%s is active for %s / %s: not used as the default. %s",
                          active.model_version.name, key or "any indication", marker, refusal)
                continue
            return active.model_version
        return None


class ModelEvaluation(models.Model):
    """A research model and the current default detector scored on the same held-out fields (the
    candidate's recorded held-out split), at promotion review (analysis.promotion)."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations")
    baseline = models.CharField(max_length=100, help_text='the default it was compared with: "classic" or a model name')
    baseline_sha256 = models.CharField(max_length=64, blank=True, help_text="empty for classic")
    marker = models.CharField(max_length=16, choices=Marker.choices, default=Marker.PDL1)
    data = models.TextField(help_text="the held-out fields: sources and counts")
    fields = models.PositiveIntegerField()
    synthetic = models.BooleanField(default=False, help_text="any of the held-out fields is SYNTHETIC")
    candidate_scores = models.JSONField(help_text="analysis.evaluation.DetectorScore of the candidate")
    baseline_scores = models.JSONField(help_text="analysis.evaluation.DetectorScore of the default")
    # Pooled scores let the largest source decide; the review shows each source's own row beside them.
    per_source = models.JSONField(default=list, blank=True,
                                  help_text="per held-out source: its spec, field count and both detectors' scores")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.model_version} against {self.baseline} on {self.fields} held-out fields"


class ModelPromotion(models.Model):
    """Who released a model for clinical use, when, why, and on which evaluation (never edited)."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotions")
    evaluation = models.ForeignKey(ModelEvaluation, on_delete=models.PROTECT, related_name="promotions")
    from_status = models.CharField(max_length=16, choices=ModelStatus.choices)
    to_status = models.CharField(max_length=16, choices=ModelStatus.choices)
    reason = models.TextField()
    promoted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    promoted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-promoted_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.model_version}: {self.from_status} -> {self.to_status}"


class JobStateError(RuntimeError):
    """A transition that the job's current state does not allow."""


class AnalysisJob(models.Model):
    """One analysis of one slide: split into tiles → detect in batches → merge.

    State transitions live here; each pipeline stage (workers.tasks) locks the row, checks the
    state it expects and calls one of these.
    """

    slide = models.ForeignKey("cases.Slide", on_delete=models.PROTECT, related_name="analysis_jobs")
    detector = models.CharField(max_length=100, help_text='"classic" or a ModelVersion name')
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="jobs")
    parameters = models.JSONField(default=dict, blank=True)
    provenance = models.JSONField(
        default=dict, blank=True,
        help_text="what ran: classic with its parameters, a ModelVersion (name, sha256) or, from the research "
                  "CLI only, a checkpoint file (path, sha256)")
    software_version = models.CharField(max_length=40, blank=True, help_text="platform version that ran the job")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    tiles_total = models.PositiveIntegerField(default=0)
    tiles_done = models.PositiveIntegerField(default=0)
    batches_total = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True, help_text="seconds per stage")
    error = models.TextField(blank=True)
    tissue_area_mm2 = models.FloatField(null=True, blank=True)
    result_file = models.CharField(max_length=500, blank=True, help_text="detection store, relative to MEDIA_ROOT")
    summary = models.JSONField(default=dict, blank=True, help_text="counts per class, TPS, counts per region")
    attempt = models.PositiveIntegerField(default=1)
    # The lease of the split or merge stage while the job is queued or merging: past it, its task was
    # lost (a Redis restart, a broker that could not be reached at commit) or its worker died, and the
    # watchdog (workers.tasks.requeue_overdue_batches) queues the stage again.
    stage_deadline = models.DateTimeField(null=True, blank=True)
    stage_attempts = models.PositiveIntegerField(default=0, help_text="times a worker started the current stage (split or merge); a start past PDL1_BATCH_MAX_ATTEMPTS fails the job")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Job {self.pk} on slide {self.slide_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_JOB_STATUSES

    @property
    def stated_summary(self) -> dict:
        """The summary with its TPS as every output states it (analysis.scoring.stated_pct): jobs merged
        before that rule kept the uncut float, which a page rounding it would state otherwise."""
        from .scoring import stated_pct

        summary = dict(self.summary or {})
        if summary.get("tps") is not None:
            summary["tps"] = stated_pct(summary["tps"])
        return summary

    def _require(self, *allowed):
        if self.status not in allowed:
            raise JobStateError(f"job {self.pk} is {self.status}; expected {' or '.join(allowed)}")

    def lease_stage(self, until):
        """Split (queued) or merge (merging) is queued or under way until `until` at the latest."""
        self._require(JobStatus.QUEUED, JobStatus.MERGING)
        self.stage_deadline = until

    def mark_running(self, tiles_total: int, batches_total: int, tissue_area_mm2: float, split_seconds: float):
        self._require(JobStatus.QUEUED)
        self.status = JobStatus.RUNNING
        self.stage_deadline, self.stage_attempts = None, 0  # the batches have leases of their own
        self.tiles_total, self.batches_total = tiles_total, batches_total
        self.tissue_area_mm2 = tissue_area_mm2
        self.timings = {**self.timings, "split": split_seconds}
        self.software_version = software_version()  # the version of the worker that runs it
        self.started_at = self.started_at or timezone.now()

    def record_batch_done(self, tiles_done: int, batches_done: int, detect_seconds: float):
        self._require(JobStatus.RUNNING)
        self.tiles_done, self.batches_done = tiles_done, batches_done
        self.timings = {**self.timings, "detect": detect_seconds}

    @property
    def all_batches_done(self) -> bool:
        return self.batches_total > 0 and self.batches_done >= self.batches_total

    def mark_merging(self, until):
        self._require(JobStatus.RUNNING)
        self.status = JobStatus.MERGING
        self.stage_deadline, self.stage_attempts = until, 0

    def mark_done(self, result_file: str, summary: dict, merge_seconds: float):
        self._require(JobStatus.MERGING)
        self.status, self.stage_deadline = JobStatus.DONE, None
        self.result_file, self.summary = result_file, summary
        self.timings = {**self.timings, "merge": merge_seconds}
        self.finished_at = timezone.now()

    def mark_failed(self, reason: str):
        if self.is_final:
            return
        self.status, self.error, self.finished_at = JobStatus.FAILED, reason[:2000], timezone.now()
        self.stage_deadline = None

    def cancel(self):
        self._require(JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.MERGING)
        self.status, self.finished_at, self.stage_deadline = JobStatus.CANCELLED, timezone.now(), None

    def research_use_reason(self) -> str:
        """Why this job's result may not feed a signed report ('' when it may): it ran a model that is
        not released for clinical use now (research, validated, or withdrawn since), a model not measured
        on the slide's marker (ModelVersion.marker_refusal), or an unregistered checkpoint file (the research
        CLI). Classic and clinical models of the slide's marker may."""
        version, kind = self.model_version, (self.provenance or {}).get("kind")
        if version is not None and version.status != ModelStatus.CLINICAL:
            return (f"The analysis ran model {version.name}, which is {version.get_status_display().lower()}: "
                    "research models never feed signed reports. Analyse the slide again with classic or a "
                    "model released for clinical use, or have it promoted first.")
        # Run before clinical jobs checked the marker, or from the research CLI, on a slide of another marker.
        refusal = version.marker_refusal(self.slide.marker) if version is not None else ""
        if refusal:
            return f"{refusal} This analysis cannot feed a signed report: analyse the slide again."
        if version is None and kind == "checkpoint-file":
            return (f"The analysis ran an unregistered checkpoint ({self.detector}, research use only): it cannot "
                    "feed a signed report. Analyse the slide again with classic or a model released for clinical use.")
        return ""

    def reset_for_retry(self):
        """Back to queued, keeping the slide and parameters; earlier batch results are discarded."""
        self._require(JobStatus.FAILED, JobStatus.CANCELLED)
        self.status, self.error = JobStatus.QUEUED, ""
        self.tiles_total = self.tiles_done = self.batches_total = self.batches_done = 0
        self.timings, self.summary, self.result_file = {}, {}, ""
        self.started_at = self.finished_at = None
        self.stage_attempts = 0
        self.attempt += 1


class JobBatch(models.Model):
    """One map task: a list of tiles, leased by a worker, with its result file once done.

    Rerunning a batch replaces its file and row (unique per job and index), never duplicates.
    A batch not done by its deadline (worker killed, task lost) goes back in the queue.
    """

    job = models.ForeignKey(AnalysisJob, on_delete=models.CASCADE, related_name="batches")
    index = models.PositiveIntegerField()
    tiles = models.JSONField(help_text="tile descriptions (analysis.tiling.Tile as dicts)")
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.PENDING)
    deadline = models.DateTimeField(null=True, blank=True,
                                    help_text="requeued if not done by then (its worker died or its task was lost)")
    attempts = models.PositiveIntegerField(default=0)
    result_file = models.CharField(max_length=500, blank=True)
    points = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="one_batch_per_job_index")]

    def __str__(self) -> str:
        return f"Batch {self.index} of job {self.job_id} ({self.status})"
