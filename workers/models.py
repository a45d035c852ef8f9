"""A training run queued from the annotation pages: its progress, cancel request and result.

State transitions live here; workers.training runs the loop and calls them.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from workers.choices import FINAL_TRAINING_STATUSES, TrainingStatus


class TrainingStateError(RuntimeError):
    """A transition that the run's current state does not allow; the message is for the user."""


class TrainingRun(models.Model):
    name = models.SlugField(max_length=100, help_text="name the trained model is registered under")
    group = models.CharField(max_length=200, db_index=True,
                             help_text="who the run belongs to, e.g. annotation-project-3-training")
    dataset = models.CharField(max_length=500, help_text="exported dataset folder (analysis.datasets folder:PATH)")
    backbone = models.CharField(max_length=32)
    mpp = models.FloatField()
    steps_total = models.PositiveIntegerField()
    steps_done = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True, help_text="loss of the latest step")
    eta_seconds = models.FloatField(null=True, blank=True, help_text="estimated seconds of training left")
    status = models.CharField(max_length=16, choices=TrainingStatus.choices, default=TrainingStatus.QUEUED,
                              db_index=True)
    cancel_requested = models.BooleanField(default=False, help_text="the loop stops at its next step")
    error = models.TextField(blank=True)
    model_version = models.ForeignKey("analysis.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="training_runs")
    task_id = models.CharField(max_length=64, blank=True, help_text="django-q2 task id")
    attempt = models.PositiveSmallIntegerField(
        default=0, help_text="times a worker started this run; after the first it resumes from its checkpoint")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True, help_text="when the worker last reported")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # Two clicks on "Train" (or two pathologists) must not queue two runs that both train in full
            # and race to register one name: the database refuses the second, whatever the timing.
            models.UniqueConstraint(fields=["name"], condition=models.Q(status__in=["queued", "running"]),
                                    name="one_unfinished_training_run_per_name"),
        ]

    def __str__(self) -> str:
        return f"Training {self.name} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_TRAINING_STATUSES

    @property
    def state_label(self) -> str:
        if self.cancel_requested and not self.is_final:
            return "Cancelling (stops after the current step)"
        if self.status == TrainingStatus.QUEUED and self.attempt:
            return "Queued to resume from its last checkpoint"
        return self.get_status_display()

    def mark_running(self):
        """A worker took the run: a new attempt (the loop's writes carry it, so a superseded worker's
        do nothing); started_at stays the first start's, progress_at is now."""
        if self.status != TrainingStatus.QUEUED:
            raise TrainingStateError(f"training {self.name} is {self.status}, not queued")
        now = timezone.now()
        self.status, self.attempt, self.progress_at = TrainingStatus.RUNNING, self.attempt + 1, now
        self.started_at = self.started_at or now

    def mark_lost(self, note: str):
        """Its worker stopped reporting (killed, or the machine restarted): queued again, to resume
        from its last checkpoint; the note says so on the project page."""
        if self.status != TrainingStatus.RUNNING:
            raise TrainingStateError(f"training {self.name} is {self.status}, not running")
        self.status, self.error, self.eta_seconds, self.progress_at = TrainingStatus.QUEUED, note[:2000], None, timezone.now()

    def mark_done(self, model_version):
        self.status, self.model_version, self.finished_at = TrainingStatus.DONE, model_version, timezone.now()
        self.eta_seconds = 0.0

    def mark_failed(self, reason: str):
        if not self.is_final:
            self.status, self.error, self.finished_at = TrainingStatus.FAILED, reason[:2000], timezone.now()

    def mark_cancelled(self):
        self.status, self.finished_at, self.eta_seconds = TrainingStatus.CANCELLED, timezone.now(), None

    def request_cancel(self):
        """A queued run is cancelled at once (its task will find it so and not start); a running one
        stops at the loop's next step, registering nothing."""
        if self.is_final:
            raise TrainingStateError(f"training {self.name} has already ended ({self.get_status_display().lower()})")
        self.cancel_requested = True
        if self.status == TrainingStatus.QUEUED:
            self.mark_cancelled()


class StageStart(models.Model):
    """A worker took the split or merge of an analysis job (workers.tasks, under the job's row lock): the
    job's stage lease is that worker's until it runs out. The watchdog tells a stage that started and
    went silent (its worker was killed: counted towards BATCH_MAX_ATTEMPTS) from one still waiting in a
    busy queue, or whose task was lost, which it queues again without counting. One row per job."""

    job = models.OneToOneField("analysis.AnalysisJob", on_delete=models.CASCADE, primary_key=True, related_name="+")
    status = models.CharField(max_length=16, help_text="the job's status the stage ran in: queued (split), merging")
    attempt = models.PositiveIntegerField(help_text="the job's attempt")
    number = models.PositiveIntegerField(help_text="the job's stage_attempts this start made")

    @classmethod
    def record(cls, job) -> None:
        cls.objects.update_or_create(job=job, defaults={"status": job.status, "attempt": job.attempt,
                                                        "number": job.stage_attempts})

    @classmethod
    def holds(cls, job) -> bool:
        """Whether the job's current stage lease is a worker's start (not a queued task's)."""
        return cls.objects.filter(job=job, status=job.status, attempt=job.attempt, number=job.stage_attempts).exists()

    @classmethod
    def release(cls, job) -> None:
        """The started worker went silent: the stage's lease is a queued task's again."""
        cls.objects.filter(job=job).delete()
