"""Where positivity is read, per marker: the cell compartment whose DAB decides positive or negative.

A Ki-67 slide stains the nucleus (and gets the nuclear settings measured on real Ki-67 tissue,
bench/RESULTS-accuracy.md); PD-L1 and the rest the membrane ring. A job records the compartment it
ran with (its parameters; a classic job's provenance too); a PD-L1 score read from nuclear DAB is not a
PD-L1 TPS, so a report refuses such a job (cases.reports.check_job_for_case) and a clinical job cannot be
started with it (workers.services.do_start_job).
"""

from __future__ import annotations

from analysis.choices import Marker

COMPARTMENTS = ("membrane", "nucleus")
COMPARTMENT_BY_MARKER = {Marker.KI67: "nucleus"}
DEFAULT_COMPARTMENT = "membrane"


def marker_compartment(marker: str | None) -> str:
    return COMPARTMENT_BY_MARKER.get(marker or "", DEFAULT_COMPARTMENT)


def recorded_compartments(job) -> set[str]:
    """The compartments a job says it ran with: its parameters' (the pipeline's DEFAULT_COMPARTMENT when
    they name none) and its provenance parameters' (a classic job records its detector's settings)."""
    parameters = job.parameters or {}
    found = {parameters.get("compartment") or DEFAULT_COMPARTMENT}
    recorded = ((job.provenance or {}).get("parameters") or {}).get("compartment")
    if recorded:
        found.add(recorded)
    return found
