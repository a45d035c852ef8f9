"""django-q2 tasks, one per pipeline stage: split → detect batch (map) → merge (reduce).

Each takes `job_id`, locks the job row, checks the state it expects, and queues the next stage
in `transaction.on_commit`. The compute lives in workers.pipeline.
"""

import logging
import time
from datetime import timedelta

from pdl1site.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from analysis.choices import BatchStatus, JobStatus
from analysis.models import AnalysisJob, JobBatch
from workers import pipeline
from workers.dbretry import OUTAGE_ERRORS, retry_while_database_down
from workers.fullstorage import NoLongerOurs, StorageFull, retry_while_storage_full
from workers.models import StageStart
from workers.progress import emit_job_progress
from workers.queue import enqueue, lease_deadline

log = logging.getLogger(__name__)

_deadline = lease_deadline

# A stage that meets an unreachable database (a PostgreSQL restart) runs again from its start for this
# long, instead of failing and waiting BATCH_DEADLINE_SECONDS for the watchdog. Every stage checks the
# job's state under its row lock, so running again repeats nothing that was recorded.
STAGE_DB_RETRY_SECONDS = 120
# A detect batch or merge whose write meets a full MEDIA_ROOT writes again for this long (an upload or a
# backup filling it for seconds must not fail a job whose detections took minutes), then the job fails
# saying the storage is full. Each wait renews the batch's (or merge's) lease, so the watchdog does not
# give the work to another worker meanwhile; work that moved on anyway (cancelled, retried) is let go.
STAGE_STORAGE_RETRY_SECONDS = 120

# Batches leased by this process, with the attempt that leased them: a detect batch run again after a
# database outage takes back its own lease instead of taking it for another worker's.
_own_leases: set[tuple[int, int, int, int]] = set()  # (job, job attempt, batch index, batch attempt)
# Likewise the split and merge stages this process took: (job, job attempt, job status, stage_attempts).
_own_stages: set[tuple[int, int, str, int]] = set()


def _riding_out_outages(stage):
    import functools

    @functools.wraps(stage)
    def task(*args):
        return retry_while_database_down(lambda: stage(*args), f"{stage.__name__}{args}", STAGE_DB_RETRY_SECONDS)
    return task


# Row locks are taken job first, then its batches. A query that joins (the slide, the job) locks only its
# own rows (FOR UPDATE OF, PostgreSQL): locking the job too from a batch would take them in the other
# order, and a batch leased while another records its result deadlocked.
_ROW = ("self",)


def _current(job_id: int, status: str, attempt: int) -> AnalysisJob | None:
    """The job, row-locked, if it is still in `status` on `attempt`; None when it moved on while we
    computed (cancelled, failed, retried, or finished by a duplicate delivery)."""
    job = AnalysisJob.objects.select_for_update(of=_ROW).select_related("slide").get(pk=job_id)
    return job if job.status == status and job.attempt == attempt else None


def _start_stage(job_id: int, status: str) -> AnalysisJob | None:
    """Take the job's split (`status` queued) or merge (merging) for this worker under the row lock and
    let the lock go: the stage's lease is then this worker's and the start counts towards
    BATCH_MAX_ATTEMPTS. None when the job moved on, another worker holds a live start, or every start
    so far went silent (the job fails with the reason). Waiting in the queue never counts: 50 slides
    queued at once keep a merge waiting for hours."""
    with transaction.atomic():
        job = AnalysisJob.objects.select_for_update(of=_ROW).select_related("slide").get(pk=job_id)
        if job.status != status:
            return None  # already done by an earlier delivery, or cancelled
        started = StageStart.holds(job)
        own = started and (job.pk, job.attempt, status, job.stage_attempts) in _own_stages
        if started and not own and job.stage_deadline and job.stage_deadline > timezone.now():
            return None  # a duplicate delivery while another worker runs the stage
        if not own:
            if job.stage_attempts >= settings.PDL1_BATCH_MAX_ATTEMPTS:
                job.mark_failed(_stage_over_cap_reason(STAGE_TASKS[status][0], job.stage_attempts))
                job.save()
                emit_job_progress(job)
                return None
            job.stage_attempts += 1
            StageStart.record(job)
        job.lease_stage(_deadline())  # under way: lost only if it outlives this lease
        job.save(update_fields=["stage_deadline", "stage_attempts"])
    _own_stages.add((job.pk, job.attempt, status, job.stage_attempts))  # taken back after an outage
    return job


def _renew_batch_lease(batch_pk: int, lease: tuple[int, int, int, int]) -> bool:
    """While a batch's write waits for storage: its lease renewed, if the batch is still this worker's
    (job running on the same attempt, batch leased on the same attempt number)."""
    with transaction.atomic():
        batch = JobBatch.objects.select_for_update(of=_ROW).select_related("job").get(pk=batch_pk)
        if (batch.job.status != JobStatus.RUNNING or batch.job.attempt != lease[1]
                or batch.status != BatchStatus.LEASED or batch.attempts != lease[3]):
            return False
        batch.deadline = _deadline()
        batch.save(update_fields=["deadline"])
        return True


def _renew_merge_lease(job_id: int, attempt: int, stage_attempts: int) -> bool:
    """While the merge's write waits for storage: the merge stage's lease renewed, if it is still this
    worker's (merging, same attempt, no other start of the stage since)."""
    with transaction.atomic():
        job = AnalysisJob.objects.select_for_update(of=_ROW).get(pk=job_id)
        if job.status != JobStatus.MERGING or job.attempt != attempt or job.stage_attempts != stage_attempts:
            return False
        job.lease_stage(_deadline())
        job.save(update_fields=["stage_deadline"])
        return True


def _end_stage(job: AnalysisJob, status: str) -> None:
    _own_stages.discard((job.pk, job.attempt, status, job.stage_attempts))


@_riding_out_outages
def split_job(job_id: int) -> None:
    # Planning reads the whole slide (seconds to minutes) and must not hold the row lock (under SQLite
    # the database's one write lock): the stage is taken under it, computed, then recorded under it.
    job = _start_stage(job_id, JobStatus.QUEUED)
    if job is None:
        return
    _split(job)  # a database outage escapes with the lease kept: the stage run again takes it back
    _end_stage(job, JobStatus.QUEUED)


def _split(job: AnalysisJob) -> None:
    job_id, attempt = job.pk, job.attempt
    started = time.perf_counter()
    try:
        plan = pipeline.plan_job(job)
    except OUTAGE_ERRORS:
        raise  # the database, not the slide: the stage runs again when it is back
    except Exception as exc:  # noqa: BLE001  any failure ends the job with its reason, never leaves it queued
        with transaction.atomic():
            job = _current(job_id, JobStatus.QUEUED, attempt)
            if job is not None:
                job.mark_failed(_reason("split", exc))
                job.save()
                emit_job_progress(job)
        return
    with transaction.atomic():  # record, unless the job changed meanwhile
        job = _current(job_id, JobStatus.QUEUED, attempt)
        if job is None:
            return
        JobBatch.objects.filter(job=job).delete()  # a retried job starts from a clean slate
        JobBatch.objects.bulk_create(
            JobBatch(job=job, index=i, tiles=tiles, deadline=_deadline()) for i, tiles in enumerate(plan.batches)
        )
        job.mark_running(len(plan.tiles), len(plan.batches), plan.tissue_area_mm2, time.perf_counter() - started)
        # Detect and merge read what this split found, not the slide's as a later job's split leaves it.
        # A retry records the devices of its own batches only (detect_compute), not the earlier attempt's, and
        # the upsampling of the resolution this split tiles at (the slide's mpp may have changed since the start).
        kept = {k: v for k, v in (job.provenance or {}).items() if k not in ("detect_compute", "upsampled")}
        job.provenance = {**kept, "tiled_at_mpp": plan.mpp, "tissue_threshold_od": plan.qc.get("tissue_threshold_od"),
                          **({"upsampled": plan.upsampled} if plan.upsampled else {})}
        job.save()
        # The slide's check before scoring (cases.Slide.qc): flagged on its pages, and a failed one
        # feeds no signed report unless a pathologist overrides it.
        job.slide.record_qc(plan.qc)
        job.slide.save(update_fields=["qc"])
        emit_job_progress(job)
        count = len(plan.batches)
        transaction.on_commit(lambda: [enqueue("workers.tasks.detect_batch", job_id, i) for i in range(count)])


@_riding_out_outages
def detect_batch(job_id: int, index: int) -> None:
    with transaction.atomic():
        batch = JobBatch.objects.select_for_update(of=_ROW).select_related("job__slide").get(job_id=job_id, index=index)
        if batch.job.status != JobStatus.RUNNING or batch.status == BatchStatus.DONE:
            return  # cancelled or failed meanwhile, or a redelivered duplicate of a finished batch
        own = batch.status == BatchStatus.LEASED and (job_id, batch.job.attempt, index, batch.attempts) in _own_leases
        if batch.status == BatchStatus.LEASED and batch.deadline and batch.deadline > timezone.now() and not own:
            return  # a duplicate delivery while another worker holds a live lease on it
        over_cap = not own and batch.attempts >= settings.PDL1_BATCH_MAX_ATTEMPTS
        if not over_cap:
            batch.status, batch.deadline = BatchStatus.LEASED, _deadline()
            batch.attempts += 0 if own else 1  # this process's own lease, taken back after an outage
            batch.save(update_fields=["status", "deadline", "attempts"])
    job = batch.job
    if over_cap:
        _fail(job_id, _over_cap_reason(index, batch.attempts), attempt=job.attempt)
        return
    lease = (job_id, job.attempt, index, batch.attempts)
    _own_leases.add(lease)  # committed: a run again after an outage below takes it back
    try:
        found = pipeline.detect_batch(job, batch.tiles)
        result_file = retry_while_storage_full(lambda: pipeline.write_batch_file(job, index, found),
                                               f"writing the detections of batch {index}", STAGE_STORAGE_RETRY_SECONDS,
                                               still_ours=lambda: _renew_batch_lease(batch.pk, lease))
    except OUTAGE_ERRORS:
        raise
    except NoLongerOurs:
        _own_leases.discard(lease)
        return
    except Exception as exc:  # noqa: BLE001  a detector that cannot load, a bad tile, storage full for minutes:
        # the job fails with the reason (Retry starts it again) instead of being requeued until the end of time.
        _fail(job_id, _reason(f"batch {index}", exc), attempt=job.attempt)
        _own_leases.discard(lease)
        return
    with transaction.atomic():
        job = AnalysisJob.objects.select_for_update().get(pk=job_id)
        if job.status != JobStatus.RUNNING or job.attempt != lease[1]:
            _own_leases.discard(lease)
            if job.status == JobStatus.DONE and job.attempt == lease[1]:
                # Another worker's copy of this batch was recorded and merged while this one computed: the
                # merge removed the batch files, and this late write put one back beside the store.
                pipeline.remove_late_batch_file(job, result_file)
            return  # cancelled, failed, or retried meanwhile: this attempt's result counts for nothing
        changed = JobBatch.objects.filter(pk=batch.pk).exclude(status=BatchStatus.DONE).update(
            status=BatchStatus.DONE, result_file=result_file, points=len(found.labels), seconds=found.seconds)
        if changed:  # counted once, here: re-reading every done batch's tiles made each record slower
            job.record_batch_done(job.tiles_done + len(batch.tiles), job.batches_done + 1,
                                  (job.timings or {}).get("detect", 0.0) + found.seconds)
            # Which devices and precisions computed the job: a CUDA worker's bf16 can give other points.
            job.provenance = pipeline.record_batch_compute(job.provenance, found)
            if job.all_batches_done:
                job.mark_merging(_deadline())
                transaction.on_commit(lambda: enqueue("workers.tasks.merge_job", job_id))
            job.save()
            emit_job_progress(job, new_points={"xy": found.xy[:5000].round(1).tolist(),
                                               "labels": found.labels[:5000].tolist()})
    _own_leases.discard(lease)
    requeue_overdue_batches(job_id)


@_riding_out_outages
def merge_job(job_id: int) -> None:
    # As split_job: take the stage under the lock, merge without it, record under it again.
    job = _start_stage(job_id, JobStatus.MERGING)
    if job is None:
        return
    _merge(job)
    _end_stage(job, JobStatus.MERGING)


def _merge(job: AnalysisJob) -> None:
    job_id, attempt, stage_attempts = job.pk, job.attempt, job.stage_attempts
    files = list(job.batches.order_by("index").values_list("result_file", flat=True))
    started = time.perf_counter()
    failure = None
    try:
        result_file, summary = retry_while_storage_full(
            lambda: pipeline.merge_job(job, files), "writing the merged detections", STAGE_STORAGE_RETRY_SECONDS,
            still_ours=lambda: _renew_merge_lease(job_id, attempt, stage_attempts))
    except OUTAGE_ERRORS:
        raise
    except NoLongerOurs:
        return  # the merge went to another start (or the job moved on): that one records the result
    except Exception as exc:  # noqa: BLE001
        failure = _reason("merge", exc)
    with transaction.atomic():
        job = _current(job_id, JobStatus.MERGING, attempt)
        if job is None:
            return  # cancelled (or finished by a duplicate delivery) while merging
        if failure is not None:
            job.mark_failed(failure)
        else:
            job.mark_done(result_file, summary, time.perf_counter() - started)
            job.stage_attempts = 0  # no stage under way: the count of starts is the merge's no more
            done = job
            transaction.on_commit(lambda: pipeline.remove_leftovers(done, files))
        job.save()
        emit_job_progress(job)


def requeue_overdue_batches(job_id: int | None = None) -> int:
    """Queue again every unfinished batch past its deadline: its worker died or its task was lost
    (the Redis broker does not redeliver a task whose worker was killed). Runs after each batch
    and on a schedule (workers/migrations), the watchdog: the scheduled run (no `job_id`) also
    queues again the split or merge of every job whose stage lease ran out (requeue_lost_stages)."""
    if job_id is None:
        requeue_lost_stages()
    overdue = JobBatch.objects.filter(job__status=JobStatus.RUNNING, deadline__lt=timezone.now()).exclude(
        status=BatchStatus.DONE)
    if job_id is not None:
        overdue = overdue.filter(job_id=job_id)
    requeued, exhausted = [], {}
    now, lease = timezone.now(), timedelta(seconds=settings.PDL1_BATCH_DEADLINE_SECONDS)
    with transaction.atomic():
        for batch in overdue.select_for_update(of=_ROW).select_related("job"):
            if batch.attempts >= settings.PDL1_BATCH_MAX_ATTEMPTS:  # its worker died every time: stop here
                exhausted.setdefault(batch.job_id, (_over_cap_reason(batch.index, batch.attempts), batch.job.attempt))
                continue
            if batch.status == BatchStatus.PENDING:
                # No worker took it since it was queued: most likely waiting behind a backlog (50 slides
                # queued at once), else its task was lost. Looked at again after as long as the job's
                # batches have waited, so a backlog of hours piles a few copies per batch, not one a lease.
                waited = now - (batch.job.started_at or now)
                batch.deadline = now + max(lease, waited)
            else:  # its worker went silent
                batch.status, batch.deadline = BatchStatus.PENDING, _deadline()
            batch.save(update_fields=["status", "deadline"])
            requeued.append((batch.job_id, batch.index))
        transaction.on_commit(lambda: [enqueue("workers.tasks.detect_batch", j, i) for j, i in requeued])
    for failed_job, (reason, attempt) in exhausted.items():  # the job row is locked after the batches' lock is let go
        _fail(failed_job, reason, attempt=attempt)  # a cancel and retry meanwhile: not the new attempt's failure
    if requeued:
        log.warning("requeued overdue batches %s", requeued)
    return len(requeued)


STAGE_TASKS = {JobStatus.QUEUED: ("split", "workers.tasks.split_job"),
               JobStatus.MERGING: ("merge", "workers.tasks.merge_job")}


def requeue_lost_stages() -> int:
    """Queue again the split of every queued job and the merge of every merging job whose stage lease
    ran out. Not taken by a worker since it was queued (waiting in a busy queue, or its task lost to a
    Redis restart or a broker down at commit): queued again, at most once per lease, never counted.
    Taken and gone silent (its worker killed): queued again while fewer than BATCH_MAX_ATTEMPTS starts
    went silent, else the job fails with the reason (Retry starts again). Both stages check the job's
    state and lease under its row lock, so a late duplicate does nothing. Jobs from before the lease
    existed (no stage_deadline) count from their creation."""
    now = timezone.now()
    lost = AnalysisJob.objects.filter(status__in=list(STAGE_TASKS)).filter(
        Q(stage_deadline__lt=now)
        | Q(stage_deadline__isnull=True, created_at__lt=now - timedelta(seconds=settings.PDL1_BATCH_DEADLINE_SECONDS)))
    requeued, exhausted = [], []
    with transaction.atomic():
        for job in lost.select_for_update():
            stage, func = STAGE_TASKS[job.status]
            if StageStart.holds(job):  # its worker went silent
                if job.stage_attempts >= settings.PDL1_BATCH_MAX_ATTEMPTS:
                    job.mark_failed(_stage_over_cap_reason(stage, job.stage_attempts))
                    job.save()
                    exhausted.append(job)
                    continue
                StageStart.release(job)
            job.lease_stage(_deadline())
            job.save(update_fields=["stage_deadline"])
            requeued.append((func, job.pk))
        transaction.on_commit(lambda: [enqueue(func, pk) for func, pk in requeued])
    for job in exhausted:
        emit_job_progress(job)
    if requeued:
        log.warning("queued lost stages again: %s", requeued)
    return len(requeued)


def _reason(stage: str, exc: Exception) -> str:
    """The message a failed job shows: pipeline errors are written for users; anything else is
    named with its type (and logged with its traceback)."""
    if isinstance(exc, pipeline.PipelineError):
        return str(exc)
    if isinstance(exc, StorageFull):
        return f"{stage}: {exc}"
    log.exception("%s failed", stage)
    return f"{stage} failed: {type(exc).__name__}: {exc}"


def _stage_over_cap_reason(stage: str, attempts: int) -> str:
    return (f"the {stage} stage did not finish in {attempts} attempts (BATCH_MAX_ATTEMPTS): its worker stopped "
            "each time (killed, out of memory?)")


def _over_cap_reason(index: int, attempts: int) -> str:
    return (f"batch {index} did not finish in {attempts} attempts (BATCH_MAX_ATTEMPTS): its worker stopped "
            "each time (killed, out of memory?)")  # attempts count leases a worker took, not lost tasks


def _fail(job_id: int, reason: str, attempt: int | None = None) -> None:
    with transaction.atomic():
        job = AnalysisJob.objects.select_for_update().get(pk=job_id)
        if attempt is not None and job.attempt != attempt:
            return  # a batch of an earlier attempt: the retried job is not this failure's
        job.mark_failed(reason)
        job.save()
        emit_job_progress(job)
