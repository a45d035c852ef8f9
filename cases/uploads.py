"""Upload handling: stream to a temporary file on disk and stop at the configured size limit."""

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler


def upload_limit(request) -> int:
    """Annotation point files are read whole into memory: they get their own, small cap."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.url_name == "annotation-session-import-points":
        return settings.ANNOTATION_IMPORT_MAX_BYTES
    return settings.SLIDE_UPLOAD_MAX_BYTES


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """TemporaryFileUploadHandler that aborts an upload past its limit (upload_limit).

    The request's whole body counts, so a series of files cannot add up past the limit. The
    partial temporary file is closed and deleted by Django when the upload stops.
    """

    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        if self.request is not None:
            self.request.upload_too_large = False

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > upload_limit(self.request):
            self.request.upload_too_large = True
            self.file.close()
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)
