"""Upload handling: stream to a temporary file on disk and stop at the configured size limit."""

import errno
import logging

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


# What a killed process (SIGKILL, out of memory, a restart during a 300-s validation) leaves under the
# temporary folder: an ingest's staging folder, a spilled upload, Django's temporary upload file. Nothing
# else cleans them and backups skip the folder, so they would fill the disk unseen.  An entry is old
# when nothing in it changed for this long: far beyond an upload or a validation in progress.
TEMP_MAX_AGE_SECONDS = 6 * 3600


def sweep_stale_temporary_files(now: float | None = None) -> list[str]:
    """Remove entries of FILE_UPLOAD_TEMP_DIR unchanged for TEMP_MAX_AGE_SECONDS; their names.  Run by a
    django-q2 schedule every hour (cases/migrations/0009)."""
    import shutil
    import time
    from pathlib import Path

    folder = Path(settings.FILE_UPLOAD_TEMP_DIR)
    cutoff = (time.time() if now is None else now) - TEMP_MAX_AGE_SECONDS
    removed = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            newest = max([entry.lstat().st_mtime] + [p.lstat().st_mtime for p in entry.rglob("*")]
                         if entry.is_dir() and not entry.is_symlink() else [entry.lstat().st_mtime])
            if newest >= cutoff:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry.name)
        except FileNotFoundError:  # finished and removed by its own process meanwhile
            continue
    if removed:
        log.warning("removed %d stale temporary upload file(s): %s", len(removed), ", ".join(removed[:20]))
    return removed
