"""Riding out a short database outage inside a worker task (a PostgreSQL restart, a dropped
connection, a locked SQLite file) instead of failing the task and leaving its work to a watchdog
minutes later."""

import logging
import time

from django.db import DatabaseError, InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)

OUTAGE_ERRORS = (OperationalError, InterfaceError)
FIRST_DELAY = 0.25  # seconds before the first retry; doubled up to MAX_DELAY
MAX_DELAY = 5.0


class DatabaseLost(Exception):
    """The database stayed unreachable for longer than the task waits; the message is for the user."""


def retry_while_database_down(call, what: str, limit_seconds: float):
    """`call()` (a short read or write, or a whole transaction: never called inside one), tried again
    while the database is unreachable: the broken connection is closed so that the next try opens a
    new one, after 0.25, 0.5, 1, 2, 4, 5, 5... s, for `limit_seconds` in all; then DatabaseLost."""
    give_up, delay = time.monotonic() + limit_seconds, FIRST_DELAY
    while True:
        try:
            return call()
        except OUTAGE_ERRORS as exc:
            left = give_up - time.monotonic()
            if left <= 0:
                raise DatabaseLost(f"the database was unreachable for more than {limit_seconds:g} s while {what} "
                                   f"({type(exc).__name__}: {str(exc).strip()[:300]})") from exc
            log.warning("database unreachable while %s (%s); trying again in %.2f s", what, exc, min(delay, left))
            try:
                connection.close()
            except DatabaseError:  # closing a connection the server dropped may fail too: it is gone anyway
                pass
            time.sleep(min(delay, left))
            delay = min(2 * delay, MAX_DELAY)
