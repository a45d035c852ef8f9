"""PD-L1 scores from counts: pure functions, no database.

TPS (tumour proportion score) = PD-L1-positive viable tumour cells / all viable tumour cells × 100.
CPS (combined positive score) = (PD-L1-positive tumour cells + PD-L1-positive lymphocytes and
macrophages) / viable tumour cells × 100, capped at 100. Our detectors label tumour nuclei only
(positive/negative): there is no immune-cell class, so CPS is always "unavailable" for now.

A score is interpreted with a cut-off table (assay clone × indication × score type; admin-editable
rows in cases.models.CutoffTable, passed here as plain lists). Without an *approved* table the
value is reported for research use only, with no clinical category.
"""

from __future__ import annotations

import math

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Fewer viable tumour cells than this: the specimen is insufficient for scoring (22C3 and SP263
# interpretation guides both require at least 100 viable tumour cells).
MIN_VIABLE_TUMOUR_CELLS = 100

INSUFFICIENT = "insufficient for scoring"
RESEARCH_USE = "research use only: no approved cut-off for this assay and indication"
CPS_UNAVAILABLE = ("unavailable: immune cells (lymphocytes, macrophages) are not labelled by the detector, "
                   "which detects tumour nuclei only")


def tps(positive: int, negative: int) -> float | None:
    total = positive + negative
    return None if total == 0 else 100.0 * positive / total


def stated_pct(value: float | None) -> float | None:
    """A percentage as every output states it: two decimals, cut (not rounded) so the stated number never
    reaches a cut-off the count does not (49.996 % is stated 49.99 and is "1-49 %", as the count is; rounded
    it read 50.00).  The category is read from this value, so it is the exact count's for cut-offs of up to
    two decimals.  The 1e-9 absorbs float error in 100 * p / n (a true 29 % computed as 28.999...)."""
    return None if value is None else math.floor(value * 100 + 1e-9) / 100


def cps(positive_tumour: int, positive_immune: int | None, viable_tumour: int) -> float | None:
    """Combined positive score, capped at 100; None when immune cells were not labelled or no tumour."""
    if positive_immune is None or viable_tumour <= 0:
        return None
    return min(100.0, 100.0 * (positive_tumour + positive_immune) / viable_tumour)


# 22C3 pharmDx in NSCLC (the FDA/EMA label): TPS < 1 %, 1–49 %, ≥ 50 %. As ordered lower bounds.
CUTOFFS_22C3_NSCLC_TPS = ((0.0, "TPS < 1%"), (1.0, "TPS 1-49%"), (50.0, "TPS >= 50%"))
# VENTANA SP263 in NSCLC (tumour cells): < 1 %, 1–24 %, 25–49 %, ≥ 50 %.
CUTOFFS_SP263_NSCLC_TPS = ((0.0, "TC < 1%"), (1.0, "TC 1-24%"), (25.0, "TC 25-49%"), (50.0, "TC >= 50%"))
# The built-in TPS cut-offs of each clone (the defaults cases' migration 0004 seeds as CutoffTables);
# a clone without one (SP142, 28-8, other) gets no category here. None: no case, the 22C3 default.
TPS_CUTOFFS_BY_CLONE = {None: CUTOFFS_22C3_NSCLC_TPS, "22C3": CUTOFFS_22C3_NSCLC_TPS,
                        "SP263": CUTOFFS_SP263_NSCLC_TPS}


def categorize(value: float | None, cutoffs: Sequence) -> str | None:
    """The label of the highest threshold that `value` reaches.

    `cutoffs` are (lower_bound, label) pairs, or dicts with "lower" and "label"; a value below the lowest
    bound gets no category (None): a table without a 0 row does not say what such a value is, and its
    lowest category ("TPS 1-49%", say) would be a positive call for 0 %.
    """
    if value is None or not cutoffs:
        return None
    pairs = [(float(c["lower"]), c["label"]) if isinstance(c, dict) else (float(c[0]), c[1]) for c in cutoffs]
    pairs.sort(key=lambda p: p[0])
    label = None
    for lower, name in pairs:
        if value >= lower:
            label = name
    return label


def tps_cutoffs(assay_clone: str | None = None) -> tuple:
    """The built-in TPS cut-offs of `assay_clone` (TPS_CUTOFFS_BY_CLONE); () when it has none."""
    return TPS_CUTOFFS_BY_CLONE.get(assay_clone, ())


def tps_category(value: float | None, assay_clone: str | None = None) -> str | None:
    """The category of `value` (as it is stated, stated_pct) under the clone's built-in cut-offs
    (22C3 when no clone is given; None for a clone without built-in cut-offs). Reports use the
    admin-edited tables instead (cases.reports.score_snapshot → `score_summary`)."""
    return categorize(stated_pct(value), tps_cutoffs(assay_clone))


def adequacy(viable_tumour: int, minimum: int = MIN_VIABLE_TUMOUR_CELLS) -> dict:
    adequate = viable_tumour >= minimum
    return {"adequate": adequate, "viable_tumour_cells": int(viable_tumour), "minimum": minimum,
            "statement": (f"adequate: {viable_tumour} viable tumour cells (at least {minimum} required)" if adequate
                          else f"{INSUFFICIENT}: {viable_tumour} viable tumour cells, fewer than {minimum}")}


BELOW_TABLE = "no category: the value is below the lowest cut-off of the table (correct the table)"


def _interpreted(value: float | None, table: dict | None, adequate: bool) -> dict:
    """A score with its category under `table` ({"cutoffs": [...], "approved": bool, ...} or None)."""
    out = {"value": stated_pct(value), "category": None, "cutoffs": [],
           "approved": False, "table": None, "source": ""}
    if table:
        out.update(cutoffs=[{"lower": float(c["lower"]), "label": c["label"]} for c in table["cutoffs"]],
                   approved=bool(table.get("approved")), table=table.get("name"), source=table.get("source", ""))
    if value is None:
        out["status"] = "unavailable"
    elif not adequate:
        out["status"] = INSUFFICIENT
    elif not out["approved"] or not out["cutoffs"]:
        out["status"] = RESEARCH_USE
    else:
        out["category"] = categorize(out["value"], out["cutoffs"])  # the value as stated (stated_pct)
        out["status"] = "reportable" if out["category"] is not None else BELOW_TABLE
    return out


# --- uncertainty ---------------------------------------------------------------------------------

NEAR_CUTOFF = "near cut-off: count manually or review"
NO_CUTOFFS = ("no near-cut-off check: no approved cut-offs apply to this assay and indication (no cut-off table "
              "for them)")
# Side of the square blocks whose counts the bootstrap resamples (µm): about a 20x field, so a
# slide gives tens to thousands of blocks and tumour heterogeneity shows up between them.
INTERVAL_BLOCK_UM = 500.0
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_MAX_BLOCKS = 500  # from here on, the delta-method interval (positive_pct_interval)


@dataclass(frozen=True)
class Interval:
    """A 95 % interval of the positive percentage: sampling (bootstrap over blocks) widened by
    the detector's measured error on labs it never saw."""
    low: float
    high: float
    sampling_low: float
    sampling_high: float
    detector_error_pp: float
    blocks: int

    def to_dict(self) -> dict:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def block_counts(xy, labels, block_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative counts per occupied square block of side block_px (level-0 px)."""
    xy, labels = np.asarray(xy, np.float64).reshape(-1, 2), np.asarray(labels).ravel()
    tumour = np.isin(labels, (1, 2))
    if not tumour.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cells = np.floor(xy[tumour] / float(block_px)).astype(np.int64)
    cells -= cells.min(axis=0)
    linear = cells[:, 1] * (int(cells[:, 0].max()) + 1) + cells[:, 0]  # one key per block
    positive = np.bincount(linear, weights=labels[tumour] == 1).astype(np.int64)
    negative = np.bincount(linear, weights=labels[tumour] == 2).astype(np.int64)
    occupied = (positive + negative) > 0
    return positive[occupied], negative[occupied]


def positive_pct_interval(positive, negative, detector_error_pp: float = 0.0, draws: int = BOOTSTRAP_DRAWS,
                          seed: int = 0) -> Interval | None:
    """95 % interval of the pooled positive % from per-block counts.

    Sampling part: percentile bootstrap over blocks (tumour is heterogeneous: blocks, not cells,
    are the independent units), never narrower than Wilson's interval over all the cells (blocks
    that happen to agree say nothing about the binomial noise within them).  Then widened
    on both sides by ``detector_error_pp``, the detector's mean |positive % error| on real
    tissue from labs it never saw (bench/RESULTS-accuracy.md): the count is only as right as the
    detector.  Seeded, so the same counts always give the same interval.  None without cells.
    """
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    total = positive + negative
    if total.sum() <= 0:
        return None
    low, high = _wilson(positive.sum(), total.sum())
    if len(total) >= BOOTSTRAP_MAX_BLOCKS:
        # Many blocks: the bootstrap's normal limit (delta method for a ratio estimator), the
        # same interval without draws x blocks work (10,000 blocks: 3 s of bootstrap).
        ratio = positive.sum() / total.sum()
        residual = positive - ratio * total
        se = np.sqrt(len(total) / (len(total) - 1) * (residual ** 2).sum()) / total.sum()
        low, high = min(low, 100 * (ratio - 1.959964 * se)), max(high, 100 * (ratio + 1.959964 * se))
    elif len(total) > 1:
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, len(total), size=(draws, len(total)))
        with np.errstate(invalid="ignore"):
            pct = 100.0 * positive[pick].sum(1) / total[pick].sum(1)
        boot_low, boot_high = np.percentile(pct[np.isfinite(pct)], [2.5, 97.5])
        low, high = min(low, boot_low), max(high, boot_high)
    low, high = max(0.0, float(low)), min(100.0, float(high))  # the delta method's limits can leave [0, 100]
    err = max(float(detector_error_pp), 0.0)
    return Interval(max(0.0, low - err), min(100.0, high + err), low, high, err, int(len(total)))


def _wilson(k: float, n: float, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100.0 * (centre - half), 100.0 * (centre + half)


# Intervals are printed with one decimal (PDF, FHIR, HL7, report pages, viewer).
INTERVAL_DECIMALS = 1


def printed_bounds(low: float, high: float, decimals: int = INTERVAL_DECIMALS) -> tuple[float, float]:
    """An interval's bounds as every output prints them: rounded outward (the low one down, the high one
    up) at the printed precision, so the printed interval always holds the computed one (44.31-49.96 %
    prints 44.3-50.0 %, 49.96-55.0 % prints 49.9-55.0 %; rounded to nearest, the second read 50.0-55.0 %
    and seemed to sit wholly above a cut-off it crosses).  The 1e-9 absorbs float error (44.3 stored as
    44.29999... is not printed 44.2).  The near-cut-off flag is read from these same bounds
    (cutoffs_crossed)."""
    scale = 10 ** decimals
    return math.floor(low * scale + 1e-9) / scale, math.ceil(high * scale - 1e-9) / scale


def interval_range(low: float, high: float, decimals: int = INTERVAL_DECIMALS) -> str:
    """"44.3-50.0": the interval as printed (printed_bounds), without the unit."""
    lo, hi = printed_bounds(low, high, decimals)
    return f"{lo:.{decimals}f}-{hi:.{decimals}f}"


def _bounds(interval) -> tuple[float, float]:
    return (interval["low"], interval["high"]) if isinstance(interval, dict) else (interval.low, interval.high)


def cutoffs_crossed(interval: Interval | dict | None, cutoffs) -> list[float]:
    """The clinical cut-offs (lower bounds above 0) that the interval, as printed (printed_bounds),
    reaches or crosses.

    Read from the printed bounds, so the flag and the printed interval never disagree: a printed interval
    that touches or crosses a cut-off is flagged, and one that is flagged prints a bound at or across it.
    A bound printed equal to a cut-off counts as reaching it, on either side.  A pathologist reading
    "44.3-50.0 %" beside "TPS >= 50 %" sees an interval that reaches the high-expression category (50.0 %
    is in it), and "50.0-55.0 %" an interval whose lower end is the cut-off itself: a recount at that
    end is a TPS of 50 % exactly, on the line that decides the treatment.  Both warrant the manual count,
    so both are flagged.
    """
    if interval is None or not cutoffs:
        return []
    low, high = printed_bounds(*_bounds(interval))
    bounds = [float(c["lower"]) if isinstance(c, dict) else float(c[0]) for c in cutoffs]
    return [b for b in sorted(set(bounds)) if b > 0 and low <= b <= high]


def uncertainty(interval: Interval | None, cutoffs) -> dict:
    """What a result states about its interval: the interval, whether it is near one of `cutoffs`
    (the category could differ on a recount), which ones, and the warning to show."""
    crossed = cutoffs_crossed(interval, cutoffs)
    text = ""
    if crossed:
        low, high = printed_bounds(interval.low, interval.high)
        reached = ", ".join(f"{'crosses' if low < c < high else 'reaches'} {c:g} %" for c in crossed)
        text = f"{NEAR_CUTOFF} (95 % interval {interval_range(interval.low, interval.high)} % {reached})"
    return {"interval": interval.to_dict() if interval else None, "near_cutoff": bool(crossed),
            "cutoffs_crossed": crossed, "uncertainty": text}


def interval_text(part: dict) -> str:
    """The uncertainty sentence of a summarised score (PDF, FHIR): its 95 % interval, and first the
    near-cut-off warning when there is one, or the note that no cut-offs apply; "" when the score has no
    interval, or is withheld because the specimen is insufficient (a summary from before such scores lost
    their interval)."""
    iv = part.get("interval")
    if not iv or part.get("status") == INSUFFICIENT:
        return ""
    text = (f"95 % interval {interval_range(iv['low'], iv['high'])} % (sampling over {iv['blocks']} tissue blocks "
            f"{interval_range(iv['sampling_low'], iv['sampling_high'])} %, widened by the detector's error "
            f"{iv['detector_error_pp']:g} points: {part.get('detector_error') or 'measured on unseen labs'})")
    if part.get("cutoff_note"):  # no cut-off to be near (score_summary)
        text = f"{text}; {part['cutoff_note']}"
    return f"{part['uncertainty']}. {text}" if part.get("near_cutoff") else text


def score_summary(counts: dict, tps_table: dict | None = None, cps_table: dict | None = None,
                  positive_immune: int | None = None, tps_interval: Interval | None = None) -> dict:
    """Everything a report states about the scores, from tumour counts and the cut-off tables.

    counts: {"positive": n, "negative": n, ...} tumour nuclei. positive_immune: PD-L1-positive
    lymphocytes and macrophages, or None when not labelled (always, with today's detectors).
    """
    positive, negative = int(counts.get("positive", 0)), int(counts.get("negative", 0))
    viable = positive + negative
    fit = adequacy(viable)
    tps_part = _interpreted(tps(positive, negative), tps_table, fit["adequate"])
    cps_part = _interpreted(cps(positive, positive_immune, viable), cps_table, fit["adequate"])
    if positive_immune is None:
        cps_part["status"] = CPS_UNAVAILABLE
    if fit["adequate"]:
        # Near a cut-off: against the cut-offs of the case's clone and indication (its table). Without one no
        # cut-off applies: no warning, and a note saying so (it used to read lung 22C3's 1 % and 50 %: a
        # breast report said "crosses 50 %", an SP263 one ignored 25 %).
        tps_part.update(uncertainty(tps_interval, tps_part["cutoffs"]))
        if tps_interval is not None and not tps_part["cutoffs"]:
            tps_part["cutoff_note"] = NO_CUTOFFS
    else:
        # Too few cells: no value is stated (cases.reports.tps_statement), so neither is its interval nor
        # a near-cut-off warning: every output says "not evaluable" and why (the adequacy statement), and
        # nothing beside it reads like a result ("interval 20.4-65.9 %", "crosses 50 %").
        tps_part.update(uncertainty(None, ()))
    # Research use unless a score this platform computes has an approved table with cut-offs: CPS is not
    # computed without immune-cell labels (positive_immune None), so an approved CPS table clears nothing
    # (it used to clear the flag of a report whose only clinical category would have been the CPS it
    # cannot state). An inadequate specimen on an approved table is not "research use": its status says
    # insufficient.
    computed = [tps_part] + ([cps_part] if positive_immune is not None else [])
    research = not any(part["approved"] and part["cutoffs"] for part in computed)
    return {
        "counts": {"positive": positive, "negative": negative, "other": int(counts.get("other", 0))},
        "viable_tumour_cells": viable,
        "adequacy": fit,
        "tps": tps_part,
        "cps": cps_part,
        "research_use": research,
    }
