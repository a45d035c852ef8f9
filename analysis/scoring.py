"""PD-L1 scores from counts. TPS = positive tumour cells / all viable tumour cells × 100."""

from __future__ import annotations


def tps(positive: int, negative: int) -> float | None:
    total = positive + negative
    return None if total == 0 else 100.0 * positive / total


# 22C3 pharmDx in NSCLC (the FDA/EMA label): TPS < 1 %, 1–49 %, ≥ 50 %.
TPS_CUTOFFS_22C3 = ((1.0, "TPS < 1%"), (50.0, "TPS 1-49%"), (float("inf"), "TPS >= 50%"))


def tps_category(value: float | None, assay_clone: str | None = None) -> str | None:
    """The 22C3 NSCLC category; admin-editable tables per assay and indication come with reports."""
    if value is None:
        return None
    for upper, label in TPS_CUTOFFS_22C3:
        if value < upper:
            return label
    return TPS_CUTOFFS_22C3[-1][1]
