"""How far off each detector's positive percentage was on real tissue from labs it never saw.

The numbers come from bench/accuracy_loso.py (leave-one-source-out on real Ki-67 fields), which
writes analysis/measured_error.json: for each detector, the worst held-out source's mean
|positive % error|.  A slide's 95 % interval (analysis.scoring.positive_pct_interval) is widened
by it; a detector that was never measured this way is widened by UNMEASURED_ERROR_PP.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

MEASURED_ERROR_FILE = Path(__file__).resolve().parent / "measured_error.json"
# Not measured on unseen labs (a freshly trained model, an unregistered checkpoint): the issue's
# opening table saw 8-24 points for such detectors, so 10 is a floor, not a worst case.
UNMEASURED_ERROR_PP = 10.0


@dataclass(frozen=True)
class DetectorError:
    positive_pct_pp: float
    measured: bool
    basis: str  # what the number is, for the report


@functools.lru_cache(maxsize=4)
def _table(path: str, mtime_ns: int) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def measured_table(path: Path | None = None) -> dict:
    path = Path(path or MEASURED_ERROR_FILE)
    if not path.is_file():
        return {}
    return _table(str(path), path.stat().st_mtime_ns)


def detector_error(key: str | None) -> DetectorError:
    """`key`: "classic:<compartment>:<adaptive|constant>", or a model's sha256 (what a job records
    of the weights that ran)."""
    entry = measured_table().get("detectors", {}).get(key or "")
    if entry is None:
        return DetectorError(UNMEASURED_ERROR_PP, False,
                             f"not measured on unseen labs: widened by {UNMEASURED_ERROR_PP:g} points")
    return DetectorError(float(entry["positive_pct_error_pp"]), True, entry["basis"])
