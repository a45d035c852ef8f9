"""A job's corrected scores: the one place viewer, reports and the report PDF get their counts from."""

from __future__ import annotations

from analysis.accuracy import detector_error
from analysis.scoring import (
    INSUFFICIENT,
    INTERVAL_BLOCK_UM,
    Interval,
    block_counts,
    interval_range,
    positive_pct_interval,
    score_summary,
)
from cases.reports import report_tps_table
from viewer.geometry import Regions
from viewer.human_layer import correction_state, job_regions
from viewer.overlay import CorrectionState, corrected_counts, corrected_points, scores_from_counts
from viewer.stores import job_mpp, job_store

NO_CASE = "no category: the slide is in no case, so no assay clone or indication gives cut-offs"


def job_scores(job, store=None, state=None, regions=None) -> dict:
    """The corrected scores of a job: corrections applied, counted inside its drawn regions only.

    The one place viewer, reports and the report PDF get their counts from. Read as a report on the case
    reads them (analysis.scoring.score_summary, cases.reports.score_snapshot): its clone and indication's
    table, approved or not, the adequacy minimum, the stated value; so the category, the adequacy and the
    near-cut-off flag shown are the ones the signed report will carry. A slide in no case has no clone or
    indication: no cut-off table, so no category (the adequacy still applies). `category_note` says why
    there is no category ("" when there is one).
    """
    store = store or job_store(job)
    state = state if state is not None else correction_state(job)
    regions = regions if regions is not None else job_regions(job)
    case = job.slide.case if job.slide.case_id else None
    counts = corrected_counts(store, state, regions)
    scores = scores_from_counts(counts)
    interval, error = tps_interval(job, store, state, regions)
    if interval is not None:
        interval = Interval(**interval.to_dict())  # as stored and stated: the report reads this rounded one
    summary = score_summary(counts, tps_table=report_tps_table(case) if case is not None else None,
                            tps_interval=interval)
    tps_part, fit = summary["tps"], summary["adequacy"]
    scores.update(tps=tps_part["value"], tps_category=tps_part["category"], adequacy=fit,
                  category_note=category_note(tps_part, fit, case is not None),
                  tps_interval=tps_part["interval"], detector_error=error.basis, near_cutoff=tps_part["near_cutoff"],
                  # As every output prints it (rounded outward) and reads the near-cut-off flag from it.
                  tps_interval_text=_printed(tps_part["interval"]),
                  uncertainty=tps_part["uncertainty"], cutoff_note=tps_part.get("cutoff_note", ""),
                  cut_note=positivity_cut_note(job))
    return scores


def _printed(interval) -> str:
    return f"{interval_range(interval['low'], interval['high'])} %" if interval else ""


def category_note(tps_part: dict, fit: dict, in_case: bool) -> str:
    """Why a TPS has no category ("" when it has one): too few viable tumour cells first (whatever the
    table), then no case, then the report's status (research use, below the table, no cells)."""
    if tps_part["category"] is not None:
        return ""
    if not fit["adequate"]:
        return (f"{INSUFFICIENT} (n < {fit['minimum']}): {fit['viable_tumour_cells']} viable tumour "
                f"cell{'s' if fit['viable_tumour_cells'] != 1 else ''} counted")
    if not in_case:
        return NO_CASE
    return tps_part["status"]


def positivity_cut_note(job) -> str:
    """What to do when a slide-wide positivity cut (classic, adaptive) was read from other cells than the
    regions now drawn count ("" when it was read inside them, or the job has no such cut): its labels were
    set at merge, so only a re-run reads the cut inside the new regions."""
    from analysis.regions import regions_fingerprint
    from viewer.geometry import region_pairs
    from viewer.models import Region

    summary = job.summary or {}
    if summary.get("dab_threshold") is None:
        return ""
    then = summary.get("dab_threshold_regions", "")
    now = regions_fingerprint(region_pairs(Region.objects.filter(slide_id=job.slide_id, deleted_at__isnull=True)
                                           .only("kind", "vertices")))
    if now == then:
        return ""
    where = "the whole slide" if not then else "the regions drawn at the time"
    return (f"The positivity cut (DAB {summary['dab_threshold']:g} OD) was read from {where}, not from the regions "
            "drawn now: re-run the analysis to read it inside them.")


def detector_key(job) -> str:
    """What the job ran, as analysis.accuracy keys it: "classic:<compartment>:<adaptive|constant>" or
    the sha256 of the weights."""
    provenance = job.provenance or {}
    if provenance.get("kind") == "classic":  # measured per compartment and kind of cut
        params = provenance.get("parameters") or {}
        cut = "adaptive" if params.get("dab_threshold") == "adaptive" else "constant"
        return f"classic:{params.get('compartment', 'membrane')}:{cut}"
    if job.model_version_id:
        return job.model_version.sha256
    return provenance.get("sha256", "")


def tps_interval(job, store, state: CorrectionState, regions: Regions | None):
    """95 % interval of the corrected TPS: bootstrap over ~0.5 mm blocks of the counted cells,
    widened by the detector's measured error on unseen labs (analysis.accuracy)."""
    xy, labels = corrected_points(store, state)
    if regions:
        keep = regions.mask(xy)
        xy, labels = xy[keep], labels[keep]
    block_px = INTERVAL_BLOCK_UM / (job_mpp(job, store) or 0.5)
    error = detector_error(detector_key(job))
    return positive_pct_interval(*block_counts(xy, labels, block_px), error.positive_pct_pp), error
