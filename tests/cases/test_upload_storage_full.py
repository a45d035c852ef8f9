"""A full slide storage during an upload (issue 19 soak: it answered 500 with a traceback in the log).

The disk fills after the first chunk has been written: the API answers 507 with a message that says
what happened and what to do, the page shows it, and nothing is stored (no row, no partial file).
"""

import errno

import pytest
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.urls import reverse
from rest_framework.test import APIClient

from cases.models import Slide
from cases.uploads import STORAGE_FULL
from tests.conftest import shared_slide, stored_files


@pytest.fixture
def disk_fills_after_first_chunk(monkeypatch):
    real = TemporaryFileUploadHandler.receive_data_chunk
    calls = {"n": 0}

    def receive(self, raw_data, start):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, raw_data, start)

    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", receive)
    return calls


def test_api_upload_on_a_full_disk_answers_507_and_stores_nothing(personas, media_root, disk_fills_after_first_chunk):
    api = APIClient()
    api.force_authenticate(personas["pathologist"])
    with open(shared_slide("CMU-1-Small-Region.svs"), "rb") as fh:
        response = api.post("/api/slides/", {"files": fh, "case": personas["case"].accession}, format="multipart")
    assert disk_fills_after_first_chunk["n"] > 1  # the failure happened mid-upload, after a chunk was written
    assert response.status_code == 507
    assert response.json() == {"detail": STORAGE_FULL}
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_page_upload_on_a_full_disk_shows_the_message_and_stores_nothing(client, personas, media_root,
                                                                         disk_fills_after_first_chunk):
    client.force_login(personas["pathologist"])
    url = reverse("cases:case-detail", args=[personas["case"].pk])
    with open(shared_slide("CMU-1-Small-Region.svs"), "rb") as fh:
        response = client.post(url, {"files": fh}, follow=True)
    assert response.status_code == 200
    assert STORAGE_FULL in [str(m) for m in response.context["messages"]]
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_other_write_errors_are_not_reported_as_a_full_disk(personas, media_root, monkeypatch):
    def broken(self, raw_data, start):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", broken)
    api = APIClient(raise_request_exception=True)
    api.force_authenticate(personas["pathologist"])
    with open(shared_slide("CMU-1-Small-Region.svs"), "rb") as fh, pytest.raises(OSError) as raised:
        api.post("/api/slides/", {"files": fh}, format="multipart")
    assert raised.value.errno == errno.EIO
