"""Bytes between MLLP blocks (review findings, 2026-12-01: a sender ending each block with <FS><CR><LF>
made the next one begin with LF, "not MLLP": it was never answered and the connection closed, so every
second message was lost). SYNTHETIC patients."""

import logging
import socket

import pytest

from integration.models import InboundMessage
from tests.factories import DepartmentFactory
from tests.integration import Listener, fields, frame, free_port, orm, read_block


@pytest.fixture
def listener(transactional_db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    DepartmentFactory(code="pathology")
    server = Listener(free_port(), limit=64 * 1024)
    yield server
    server.stop()


def exchange_all(port: int, chunks: list[bytes]) -> list[bytes]:
    """Send each chunk on one connection and read one answer after each."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        answers = []
        for chunk in chunks:
            sock.sendall(chunk)
            answers.append(read_block(sock))
        return answers


def test_line_ends_after_each_block_are_skipped_quietly(listener, caplog):
    caplog.set_level(logging.INFO, logger="integration.mllp")
    answers = exchange_all(listener.port, [frame(orm("MSG0001")) + b"\r\n",
                                           frame(orm("MSG0002", accession="S26-2")) + b"\n",
                                           b"\n\n" + frame(orm("MSG0003", accession="S26-3"))])
    assert [fields(a, "MSA")[1:3] for a in answers] == [["AA", "MSG0001"], ["AA", "MSG0002"], ["AA", "MSG0003"]]
    assert InboundMessage.objects.count() == 3
    assert not [r for r in caplog.records if "skipped" in r.getMessage()]


def test_other_bytes_before_a_block_are_skipped_with_a_log_line_and_never_answered(listener, caplog):
    answers = exchange_all(listener.port, [frame(orm("MSG0001")),
                                           b"\r\nnoise" + frame(orm("MSG0002", accession="S26-2")),
                                           orm("NOVT0001") + b"\x1c\r" + frame(orm("MSG0003", accession="S26-3"))])
    # One answer to each framed message: the bytes outside a block are not taken for a message
    assert [fields(a, "MSA")[1:3] for a in answers] == [["AA", "MSG0001"], ["AA", "MSG0002"], ["AA", "MSG0003"]]
    assert sorted(InboundMessage.objects.values_list("control_id", flat=True)) == ["MSG0001", "MSG0002", "MSG0003"]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 2 and "7 bytes" in skipped[0] and "b'noise'" in skipped[0]
    assert "b'MSH|" in skipped[1]


def test_bytes_after_the_last_block_then_a_close_leave_nothing(listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(orm()) + b"\n")
        assert fields(read_block(sock), "MSA")[1] == "AA"
        sock.sendall(b"MSH|half a message without <VT>")
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:  # the listener goes on
        sock.sendall(frame(orm("MSG0002", accession="S26-2")))
        assert fields(read_block(sock), "MSA")[1] == "AA"
    assert InboundMessage.objects.count() == 2
