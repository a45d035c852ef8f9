"""Putting pipeline stages on the django-q2 queue (Redis in production, the ORM in embedded mode).

`collecting()` diverts queued stages into a list instead, so analyze_slide can run the same
stages itself, without any worker.
"""

import contextlib
import threading

_local = threading.local()


def enqueue(func: str, job_id: int, *args) -> None:
    pending = getattr(_local, "pending", None)
    if pending is not None:
        pending.append((func, (job_id, *args)))
        return
    from django_q.tasks import async_task

    async_task(func, job_id, *args, group=f"job-{job_id}")


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
