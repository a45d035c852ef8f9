"""MLLP (HL7 v2's framing over TCP: <VT> message <FS><CR>) with python-hl7's asyncio streams.

serve(): the order listener (manage.py mllp_listen). Each block is handled in a worker thread
(Django's ORM is synchronous) and answered on the same connection; a connection that breaks mid-
message leaves nothing (the partial block is never handled); a message over the size limit is answered
AR and kept truncated. exchange(): one message out, its ACK back.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from hl7.mllp import InvalidBlockError, open_hl7_connection, start_hl7_server

log = logging.getLogger(__name__)


SEPARATOR = b"\x1c\r"  # <FS><CR>


def _handle(raw: bytes, peer, oversized: bool) -> bytes:
    from auditlog.context import set_actor
    from django.db import close_old_connections

    from integration.inbound import handle_hl7

    close_old_connections()
    try:
        with set_actor(None, remote_addr=peer[0] if peer else None):
            return handle_hl7(raw, oversized=oversized)
    finally:
        close_old_connections()  # worker threads hold no connection between messages (CONN_MAX_AGE 0)


async def read_block(reader) -> tuple[bytes, bool]:
    """(message, oversized) of the next MLLP block. A block longer than the reader's limit is read to its
    end and discarded past the limit: (its first `limit` bytes, True), so that it can still be answered.
    Raises IncompleteReadError when the connection ends mid-block, InvalidBlockError without <VT>."""
    try:
        block, oversized = (await reader.readuntil(SEPARATOR))[:-2], False
    except asyncio.LimitOverrunError as exc:
        block, oversized = await reader.readexactly(exc.consumed), True
        while True:  # skip the rest of the block
            try:
                await reader.readuntil(SEPARATOR)
                break
            except asyncio.LimitOverrunError as more:
                await reader.readexactly(more.consumed)
    if block[:1] != b"\x0b":
        raise InvalidBlockError("Block does not begin with Start Block character <VT>")
    return block[1:], oversized


async def _connection(reader, writer):
    peer = writer.get_extra_info("peername")
    try:
        while True:
            try:
                raw, oversized = await read_block(reader)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    log.warning("MLLP %s: connection closed mid-message (%d bytes dropped)", peer, len(exc.partial))
                return
            except InvalidBlockError as exc:  # not MLLP: nothing to answer in
                log.warning("MLLP %s: %s; closing the connection", peer, exc)
                return
            try:
                answer = await sync_to_async(_handle, thread_sensitive=False)(raw, peer, oversized)
            except Exception:  # e.g. the database is down: nothing was committed; no answer, so the sender resends
                log.exception("MLLP %s: a message could not be handled; closing the connection", peer)
                return
            writer.writeblock(answer)
            await writer.drain()
    except ConnectionError as exc:
        log.info("MLLP %s: %s", peer, exc)
    finally:
        writer.close()


async def serve(host: str, port: int, limit: int, ready=None):
    """Listen until cancelled. `ready` (an asyncio or threading Event), when given, is set once listening."""
    server = await start_hl7_server(_connection, host, port, limit=limit)
    log.info("MLLP listener on %s", ", ".join(str(s.getsockname()) for s in server.sockets))
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


async def exchange(host: str, port: int, payload: bytes, timeout: float) -> bytes:
    """Send one message and read its acknowledgement (raises on timeout or a broken connection)."""
    reader, writer = await asyncio.wait_for(open_hl7_connection(host, port), timeout)
    try:
        writer.writeblock(payload)
        await asyncio.wait_for(writer.drain(), timeout)
        return await asyncio.wait_for(reader.readblock(), timeout)
    finally:
        writer.close()
