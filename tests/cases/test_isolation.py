"""Upload validation decodes pixels in a child process under a memory ceiling (issue 14, item 10)."""

import os
import time

import pytest
from rest_framework.test import APIClient

from cases.isolation import run_limited
from cases.models import Slide
from slideio.slidefile import SlideError
from tests.conftest import shared_slide, stored_files

MB = 1024 ** 2


def test_an_allocation_past_the_ceiling_is_an_error_not_a_crash():
    with pytest.raises(SlideError, match="memory"):
        run_limited(bytearray, 2048 * MB, memory_bytes=512 * MB, timeout_s=60)
    assert len(run_limited(bytearray, 8 * MB, memory_bytes=1024 * MB, timeout_s=60)) == 8 * MB


def test_a_child_that_dies_or_hangs_is_an_error():
    with pytest.raises(SlideError, match="could not be decoded"):
        run_limited(os.abort, memory_bytes=512 * MB, timeout_s=60)
    started = time.perf_counter()
    with pytest.raises(SlideError, match="longer than"):
        run_limited(time.sleep, 30, memory_bytes=512 * MB, timeout_s=0.5)
    assert time.perf_counter() - started < 10


def test_the_web_process_never_decodes_an_upload(personas, media_root, settings):
    # With a ceiling far too low to decode anything, the upload is refused with a message, nothing is
    # stored, and the test process (the web process) is unharmed: the decoding ran elsewhere.
    settings.PDL1_SLIDE_VALIDATION_MEMORY_BYTES = 48 * MB
    client = APIClient()
    client.force_authenticate(personas["pathologist"])
    with open(shared_slide("CMU-1-Small-Region.svs"), "rb") as fh:
        r = client.post("/api/slides/", {"files": fh}, format="multipart")
    assert r.status_code == 400 and "memory" in r.json()["detail"], r.json()
    assert not Slide.objects.exists() and stored_files(media_root) == []
    settings.PDL1_SLIDE_VALIDATION_MEMORY_BYTES = 4096 * MB
    with open(shared_slide("CMU-1-Small-Region.svs"), "rb") as fh:
        assert client.post("/api/slides/", {"files": fh}, format="multipart").status_code == 201
