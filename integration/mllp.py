"""MLLP (HL7 v2's framing over TCP: <VT> message <FS><CR>) with python-hl7's asyncio streams.

serve(): the order listener (manage.py mllp_listen). Each block is handled in a worker thread
(Django's ORM is synchronous) and answered on the same connection; a connection that breaks mid-
message leaves nothing (the partial block is never handled); a message over the size limit is answered
AR and kept truncated. Bytes between blocks are skipped up to the next <VT> (line ends quietly,
anything else logged): a sender ending its blocks with an extra LF lost every second message. A
connection idle too long, or too slow to finish a message or to take its answer, is closed; so is one
over the connection cap or from a peer outside the allow-list, at once
(each logged): else idle or half-sent connections held file descriptors until real senders were
turned away. exchange(): one message out, its ACK back.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from hl7.mllp import open_hl7_connection, start_hl7_server

log = logging.getLogger(__name__)


SEPARATOR = b"\x1c\r"  # <FS><CR>
START_BLOCK = b"\x0b"  # <VT>
BETWEEN_BLOCKS = b"\r\n\t "  # line ends (and blanks) some senders put after <FS><CR>: skipped without a word
SKIPPED_KEPT = 64  # bytes of what is skipped before a <VT> that are logged
IDLE_TIMEOUT = 60.0  # seconds a connection may wait for its next message
BLOCK_TIMEOUT = 60.0  # seconds a begun message may take to arrive whole, and its answer to be taken
MAX_CONNECTIONS = 64


@dataclass(frozen=True)
class Limits:
    idle_timeout: float = IDLE_TIMEOUT
    block_timeout: float = BLOCK_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    allow: tuple = ()  # ipaddress networks the peers must be in; empty: any peer


class ReadTimeout(Exception):
    pass


def allowed(address: str | None, networks) -> bool:
    """Whether a peer address is in one of the networks (any address when there are none)."""
    if not networks:
        return True
    if not address:
        return False
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    ip = getattr(ip, "ipv4_mapped", None) or ip  # an IPv4 peer on a dual-stack socket: ::ffff:a.b.c.d
    return any(ip in network for network in networks)


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


async def read_block(reader, idle_timeout: float | None = None,
                     block_timeout: float | None = None, peer=None) -> tuple[bytes, bool]:
    """(message, oversized) of the next MLLP block. A block longer than the reader's limit is read to its
    end and discarded past the limit: (its first `limit` bytes, True), so that it can still be answered.
    What comes before its <VT> is skipped: CR and LF (some senders end a block with <FS><CR><LF>) quietly,
    anything else with a log line (else a stray byte after one block made the next one "not MLLP", and it
    was never answered). Raises IncompleteReadError when the connection ends mid-block (its partial block;
    none when it ends between blocks), ReadTimeout when no block begins within `idle_timeout` or a begun
    one does not end within `block_timeout`."""
    try:
        skipped, count, ended = await asyncio.wait_for(_skip_to_start(reader), idle_timeout)
    except TimeoutError:
        raise ReadTimeout(f"no message for {idle_timeout:g} s") from None
    if skipped:
        log.warning("MLLP %s: %d bytes outside any message skipped (not after a <VT> start block): %r", peer,
                    count, skipped)
    if ended:
        raise asyncio.IncompleteReadError(b"", None)
    try:
        return await asyncio.wait_for(_rest_of_block(reader), block_timeout)
    except TimeoutError:
        raise ReadTimeout(f"a message not finished within {block_timeout:g} s") from None
    except asyncio.IncompleteReadError as exc:
        raise asyncio.IncompleteReadError(START_BLOCK + exc.partial, exc.expected) from None


async def _skip_to_start(reader) -> tuple[bytes, int, bool]:
    """Read up to and including the next <VT>: (what to log of the bytes before it, empty when they were
    only line ends; how many there were; whether the connection ended before a <VT> came). What is skipped is dropped as it is read, never held."""
    kept, count = b"", 0
    while True:
        try:
            before = (await reader.readuntil(START_BLOCK))[:-1]
        except asyncio.LimitOverrunError as exc:  # no <VT> within the reader's buffer: drop what is there
            before = await reader.readexactly(exc.consumed)
            kept, count = _keep(kept, before), count + len(before)
            continue
        except asyncio.IncompleteReadError as exc:
            return _keep(kept, exc.partial), count + len(exc.partial), True
        return _keep(kept, before), count + len(before), False


def _keep(kept: bytes, more: bytes) -> bytes:
    """What is logged of skipped bytes: from the first that is not a line end, SKIPPED_KEPT at most."""
    return (kept + more).lstrip(BETWEEN_BLOCKS)[:SKIPPED_KEPT]


async def _rest_of_block(reader) -> tuple[bytes, bool]:
    try:
        return (await reader.readuntil(SEPARATOR))[:-2], False
    except asyncio.LimitOverrunError as exc:
        block = await reader.readexactly(exc.consumed)
        while True:  # skip the rest of the block
            try:
                await reader.readuntil(SEPARATOR)
                return block, True
            except asyncio.LimitOverrunError as more:
                await reader.readexactly(more.consumed)


async def _connection(reader, writer, limits: Limits):
    peer = writer.get_extra_info("peername")
    try:
        while True:
            try:
                raw, oversized = await read_block(reader, limits.idle_timeout, limits.block_timeout, peer)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    log.warning("MLLP %s: connection closed mid-message (%d bytes dropped)", peer, len(exc.partial))
                return
            except ReadTimeout as exc:
                log.info("MLLP %s: %s; closing the connection", peer, exc)
                return
            try:
                answer = await sync_to_async(_handle, thread_sensitive=False)(raw, peer, oversized)
            except Exception:  # e.g. the database is down: nothing was committed; no answer, so the sender resends
                log.exception("MLLP %s: a message could not be handled; closing the connection", peer)
                return
            writer.writeblock(answer)
            try:
                await asyncio.wait_for(writer.drain(), limits.block_timeout)
            except TimeoutError:
                log.warning("MLLP %s: the answer was not taken within %g s; closing the connection", peer,
                            limits.block_timeout)
                return
    except ConnectionError as exc:
        log.info("MLLP %s: %s", peer, exc)
    finally:
        writer.close()


def _gate(limits: Limits, tasks: set):
    """The connection handler, behind the allow-list and the connection cap; `tasks`: those of the open
    connections."""

    async def connection(reader, writer):
        peer = writer.get_extra_info("peername")
        if not allowed(peer[0] if peer else None, limits.allow):
            log.warning("MLLP %s: not in the allowed networks; closed", peer)
            writer.close()
            return
        if len(tasks) >= limits.max_connections:
            log.warning("MLLP %s: %d connections are open already (the cap); closed", peer, len(tasks))
            writer.close()
            return
        task = asyncio.current_task()
        tasks.add(task)
        try:
            await _connection(reader, writer, limits)
        finally:
            tasks.discard(task)
    return connection


async def serve(host: str, port: int, limit: int, ready=None, limits: Limits = Limits()):
    """Listen until cancelled. `ready` (an asyncio or threading Event), when given, is set once listening."""
    tasks = set()  # one event loop: no lock needed
    server = await start_hl7_server(_gate(limits, tasks), host, port, limit=limit)
    log.info("MLLP listener on %s", ", ".join(str(s.getsockname()) for s in server.sockets))
    if ready is not None:
        ready.set()
    try:
        async with server:
            await server.serve_forever()
    finally:  # the open connections end with the listener (else they outlive its event loop)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def exchange(host: str, port: int, payload: bytes, timeout: float) -> bytes:
    """Send one message and read its acknowledgement (raises on timeout or a broken connection)."""
    reader, writer = await asyncio.wait_for(open_hl7_connection(host, port), timeout)
    try:
        writer.writeblock(payload)
        await asyncio.wait_for(writer.drain(), timeout)
        return await asyncio.wait_for(reader.readblock(), timeout)
    finally:
        writer.close()
