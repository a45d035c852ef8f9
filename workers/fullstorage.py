"""Riding out a short spell of full storage inside a worker task (MEDIA_ROOT filled by an upload, a
backup or another job's results) instead of failing a job whose detections took minutes to compute:
the write is tried again until space comes back, for a bounded time, then the job fails with a reason
that says what to do."""

import errno
import logging
import time

log = logging.getLogger(__name__)

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
FIRST_DELAY = 0.5  # seconds before the first retry; doubled up to MAX_DELAY
MAX_DELAY = 5.0


class StorageFull(Exception):
    """The storage stayed full for longer than the task waits; the message is for the user."""


class NoLongerOurs(Exception):
    """While the write waited, the work it belongs to moved on (its lease went to another worker, the job
    was cancelled, failed or finished): nothing was written and nothing is to be recorded."""


def is_storage_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


def retry_while_storage_full(call, what: str, limit_seconds: float, still_ours=None):
    """`call()` (an atomic write: a failed try leaves nothing behind), tried again while the file system
    answers "no space left" (ENOSPC) or "quota exceeded" (EDQUOT), after 0.5, 1, 2, 4, 5, 5... s, for
    `limit_seconds` in all; then StorageFull. Any other error is raised at once.

    `still_ours()`, called before each wait, renews the caller's lease on the work and says whether the
    work is still the caller's: when it is not, NoLongerOurs (a lease that ran out during the wait went to
    another worker, whose result counts; a write after it would leave a file nobody records)."""
    give_up, delay = time.monotonic() + limit_seconds, FIRST_DELAY
    while True:
        try:
            return call()
        except OSError as exc:
            if not is_storage_full(exc):
                raise
            left = give_up - time.monotonic()
            if left <= 0:
                raise StorageFull(f"the storage (MEDIA_ROOT) stayed full for more than {limit_seconds:g} s while "
                                  f"{what} ({exc.strerror or exc}): free space there, then Retry the job") from exc
            if still_ours is not None and not still_ours():
                raise NoLongerOurs(what) from exc
            log.warning("storage full while %s (%s); trying again in %.2f s", what, exc, min(delay, left))
            time.sleep(min(delay, left))
            delay = min(2 * delay, MAX_DELAY)
