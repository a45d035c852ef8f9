"""The corrected result of an analysis job, as a report and its PDF state it.

Pathologists' corrections and drawn regions belong to the viewer, which sits above cases in the
layer order (README, "Layout"). So cases declares here what its reports need and the viewer
provides it at start-up (ViewerConfig.ready: viewer.results); cases never imports the viewer.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class NoResult(Exception):
    """The job has no detection store (yet)."""

    http_status = 409  # pdl1site.rest.exception_handler


class ResultUnreadable(NoResult):
    """The job is done but its detection store cannot be read (missing, damaged, no permission): a fault
    to repair (restore the file), never "no result yet": nothing may fall back to the uncorrected
    summary, which would drop the pathologists' corrections and regions from a report."""

    http_status = 503


class JobResults(Protocol):
    def scores(self, job) -> dict:
        """Corrected scores, counted inside the job's drawn regions (raises NoResult)."""

    def correction_version(self, job) -> int:
        """The job's correction version (0: none)."""

    def corrected_points(self, job) -> tuple[np.ndarray, np.ndarray]:
        """(xy level-0 px, labels) with corrections applied (raises NoResult)."""

    def regions(self, job) -> list[tuple[bool, list]]:
        """Active drawn regions as (include?, [(x, y), ...] level-0 px)."""

    def lock_for_signing(self, job) -> None:
        """Row-lock the job's human layer until the transaction ends: a correction or region saved while
        its report is signed waits, and then meets a moved version."""


_provider: JobResults | None = None


def provide(provider: JobResults) -> None:
    global _provider
    _provider = provider


class NoProvider(RuntimeError):
    """No JobResults provider is registered (plain Python without the viewer app)."""


def job_results() -> JobResults:
    if _provider is None:
        raise NoProvider("no job results provider: the viewer app registers one when Django starts")
    return _provider
