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


def enqueue_training(folder: str, name: str, steps: int, backbone: str, mpp: float, *, group: str) -> str:
    """Queue workers.tasks.train_model on an exported dataset folder; the django-q2 task id."""
    from django_q.tasks import async_task

    return async_task("workers.tasks.train_model", folder, name, steps, backbone, mpp,
                      task_name=f"train-{name}", group=group)


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
