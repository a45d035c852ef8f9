"""The viewer's errors, answered by pdl1site.rest.exception_handler with their http_status."""

from __future__ import annotations


class ViewerInputError(ValueError):
    """Bad query parameters or correction input (HTTP 400); the message is for the user."""

    http_status = 400  # pdl1site.rest.exception_handler


class PointAlreadyThere(ViewerInputError):
    """An added point on top of a live one (HTTP 400): the cell would count twice. `point`: the id of the
    existing point (a store index or "c<correction id>"), for the page to select it instead."""

    def __init__(self, message: str, point):
        super().__init__(message)
        self.point = point

    def http_extra(self) -> dict:
        return {"point": self.point}


class CorrectionConflict(Exception):
    """The correction was based on an older version (HTTP 409)."""

    http_status = 409

    def __init__(self, message: str, version: int):
        super().__init__(message)
        self.version = version

    def http_extra(self) -> dict:
        return {"version": self.version}
