"""Upload handling: stream to a temporary file on disk and stop at the configured size limit."""

import errno
import logging
from fnmatch import fnmatch

from pdl1site.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler

log = logging.getLogger(__name__)


def upload_limit(request) -> int:
    """Annotation point files are read whole into memory: they get their own, small cap."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.url_name == "annotation-session-import-points":
        return settings.PDL1_ANNOTATION_IMPORT_MAX_BYTES
    return settings.PDL1_SLIDE_UPLOAD_MAX_BYTES


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """TemporaryFileUploadHandler that aborts an upload past its limit (upload_limit).

    The request's whole body counts, so a series of files cannot add up past the limit. The
    partial temporary file is closed and deleted by Django when the upload stops.
    """

    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0

    def new_file(self, *args, **kwargs):
        if self.request is not None:
            self.request.upload_too_large = False
        try:
            super().new_file(*args, **kwargs)
        except OSError as exc:
            self._stop_if_storage_full(exc)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > upload_limit(self.request):
            self.request.upload_too_large = True
            self.file.close()
            raise StopUpload(connection_reset=False)
        try:
            return super().receive_data_chunk(raw_data, start)
        except OSError as exc:
            self._stop_if_storage_full(exc)

    def _stop_if_storage_full(self, exc: OSError):
        """A full disk (or quota) under MEDIA_ROOT is the server's condition, not a bad request: the view
        answers 507 with a message (STORAGE_FULL); the partial file is deleted and nothing is stored."""
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise exc
        log.error("upload stopped: no space left for it under %s (%s)", settings.FILE_UPLOAD_TEMP_DIR, exc)
        if self.request is not None:
            self.request.upload_storage_full = True
        if getattr(self, "file", None) is not None:
            self.file.close()
        raise StopUpload(connection_reset=False) from exc


STORAGE_FULL = ("The server's slide storage is full: the upload was not stored. Try again later; the "
                "administrators must free space (the server log names the folder).")


def storage_full(request) -> bool:
    """Whether the upload handler stopped this request's upload on a full disk (after parsing its body)."""
    return getattr(getattr(request, "_request", request), "upload_storage_full", False)


# What a killed process (SIGKILL, out of memory, a restart during a 300-s validation) leaves behind: an
# ingest's staging folder and a spilled upload (MEDIA_ROOT/tmp, cases.services) and Django's temporary upload
# files (FILE_UPLOAD_TEMP_DIR). Nothing else cleans them and backups skip the folder, so they would fill the
# disk unseen.  Only these names are touched; an entry is old when nothing in it changed for this long: far
# beyond an upload or a validation in progress.
TEMP_MAX_AGE_SECONDS = 6 * 3600
TEMP_PATTERNS = ("ingest-*", "spill-*", "tmp*.upload*")


def sweep_stale_temporary_files(now: float | None = None) -> list[str]:
    """Remove this platform's temporary entries (TEMP_PATTERNS) unchanged for TEMP_MAX_AGE_SECONDS from
    MEDIA_ROOT/tmp and FILE_UPLOAD_TEMP_DIR, and those of analysis results (RESULT_TEMP_PATTERNS); their
    names.  A folder that is MEDIA_ROOT or holds it is never swept.  Run by a django-q2 schedule every
    hour (cases/migrations/0009)."""
    import shutil
    import time
    from pathlib import Path

    media = Path(settings.MEDIA_ROOT).resolve()
    folders = {(media / "tmp").resolve(), Path(settings.FILE_UPLOAD_TEMP_DIR or media / "tmp").resolve()}
    cutoff = (time.time() if now is None else now) - TEMP_MAX_AGE_SECONDS
    removed = []
    for folder in sorted(folders):
        if folder == media or folder in media.parents or not folder.is_dir():
            if folder.is_dir():
                log.error("not sweeping %s: it is MEDIA_ROOT or holds it (set FILE_UPLOAD_TEMP_DIR to a folder "
                          "of its own)", folder)
            continue
        for entry in sorted(folder.iterdir()):
            if not any(fnmatch(entry.name, pattern) for pattern in TEMP_PATTERNS):
                continue
            try:
                tree = entry.is_dir() and not entry.is_symlink()
                newest = max([entry.lstat().st_mtime] + ([p.lstat().st_mtime for p in entry.rglob("*")] if tree else []))
                if newest >= cutoff:
                    continue
                shutil.rmtree(entry) if tree else entry.unlink()
                removed.append(entry.name)
            except FileNotFoundError:  # finished and removed by its own process meanwhile
                continue
            except OSError as exc:  # one entry we cannot remove must not stop the sweep of the others
                log.warning("temporary entry %s not removed: %s", entry, exc)
    removed += _sweep_result_temporaries(media, cutoff)
    if removed:
        log.warning("removed %d stale temporary file(s): %s", len(removed), ", ".join(removed[:20]))
    return removed


# What a worker killed while writing leaves in a job's results folder (MEDIA_ROOT/results/job-N/attempt-N):
# a batch file's or the detection store's temporary copy, never renamed (workers.pipeline, analysis.detection_store).
RESULT_TEMP_PATTERNS = (".batch-*", ".detections.store.*.tmp")


def _sweep_result_temporaries(media, cutoff: float) -> list[str]:
    removed = []
    for entry in sorted((media / "results").glob("job-*/attempt-*/.*")):
        if not any(fnmatch(entry.name, pattern) for pattern in RESULT_TEMP_PATTERNS):
            continue
        try:
            if entry.is_file() and not entry.is_symlink() and entry.lstat().st_mtime < cutoff:
                entry.unlink()
                removed.append(str(entry.relative_to(media)))
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("temporary entry %s not removed: %s", entry, exc)
    return removed
