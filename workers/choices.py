"""Choices of the workers app."""

from django.db import models

# django-q2 queue (cluster name) of training runs: `manage.py qcluster` with Q_CLUSTER_NAME=training
# (make run starts one) takes only these, and the analysis workers never do, so a clinical job
# never waits behind a training run.
TRAINING_QUEUE = "training"


class TrainingStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Training"
    DONE = "done", "Done: registered for research use"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_TRAINING_STATUSES = (TrainingStatus.DONE, TrainingStatus.FAILED, TrainingStatus.CANCELLED)
