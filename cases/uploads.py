"""Upload handling: stream to a temporary file on disk and stop at the configured size limit."""

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler


class UploadTooLarge(Exception):
    pass


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """TemporaryFileUploadHandler that aborts an upload past SLIDE_UPLOAD_MAX_BYTES.

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
        if self.received > settings.SLIDE_UPLOAD_MAX_BYTES:
            self.request.upload_too_large = True
            self.file.close()
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)
