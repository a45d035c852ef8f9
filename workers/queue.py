"""Putting pipeline stages on the django-q2 queue (Redis in production, the ORM in embedded mode).

`collecting()` diverts queued stages into a list instead, so analyze_slide can run the same
stages itself, without any worker.
"""

import contextlib
import logging
import threading
from datetime import timedelta

_local = threading.local()
log = logging.getLogger(__name__)


def lease_deadline():
    """When a stage or batch queued (or started) now counts as lost: BATCH_DEADLINE_SECONDS from now."""
    from pdl1site.conf import settings
    from django.utils import timezone

    return timezone.now() + timedelta(seconds=settings.PDL1_BATCH_DEADLINE_SECONDS)


def enqueue(func: str, job_id: int, *args) -> None:
    pending = getattr(_local, "pending", None)
    if pending is not None:
        pending.append((func, (job_id, *args)))
        return
    from django_q.tasks import async_task

    try:
        async_task(func, job_id, *args, group=f"job-{job_id}")
    except Exception:  # noqa: BLE001  the broker is unreachable (Redis restarting): the job's state is
        # committed with a lease, and the watchdog (workers.tasks.requeue_overdue_batches) queues the
        # stage again when the lease runs out; the request that queued it must not fail for that.
        log.warning("could not queue %s%s: the watchdog queues it again after its lease", func, (job_id, *args),
                    exc_info=True)


def enqueue_training(run_id: int, *, name: str, group: str) -> str:
    """Queue workers.training.run_training on the training queue (its own `qcluster`, never the
    analysis workers'); the django-q2 task id."""
    from django_q.tasks import async_task

    from workers.choices import TRAINING_QUEUE

    return async_task("workers.training.run_training", run_id, task_name=f"train-{name}", group=group,
                      cluster=TRAINING_QUEUE)


@contextlib.contextmanager
def collecting():
    previous = getattr(_local, "pending", None)
    _local.pending = []
    try:
        yield _local.pending
    finally:
        _local.pending = previous


def run(func: str, args) -> None:
    from django.utils.module_loading import import_string

    import_string(func)(*args)
