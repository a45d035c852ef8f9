"""A file a decoder fails on is logged by its content (sha256), never by its name: an upload's name is
often an accession number, and the server log is read by more people than the uploader."""

import hashlib
import logging

import pytest

from cases import services
from cases.services import IngestError, IngestSource, do_ingest_slide

pytestmark = pytest.mark.django_db

NAME = "Doe_John_MRN123.svs"


def test_a_decoder_error_logs_the_upload_by_its_sha256_not_its_name(tmp_path, monkeypatch, caplog):
    path = tmp_path / NAME
    path.write_bytes(b"II*\x00 not really a slide" * 50)

    def decoder_fails(func, main, *args, **limits):  # a decoder's own error, naming the file as PIL's do
        raise ValueError(f"cannot identify image file {main!r}")

    monkeypatch.setattr(services, "run_limited", decoder_fails)
    with caplog.at_level(logging.WARNING, logger="cases.services"):
        with pytest.raises(IngestError) as refused:
            do_ingest_slide([IngestSource(name=NAME, path=path)])
    assert NAME in str(refused.value)  # the uploader is told which of their files it was
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "could not be decoded" in logged and "ValueError" in logged
    assert hashlib.sha256(path.read_bytes()).hexdigest()[:16] in logged
    assert "Doe_John" not in logged and "MRN123" not in logged
    assert not any(record.exc_info for record in caplog.records)  # a traceback repeats the message
