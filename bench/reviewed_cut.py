"""How far a pathologist's review of a few cells would take the classic positivity cut (issue 15).

The adaptive cut (analysis.classic.adaptive_dab_threshold) is read from a slide's own cells with no
label.  Decision 7 of bench/RESULTS-accuracy.md found that with a perfect call on the matched cells
BCData and DeepLIIF would be 0-3.5 points off, so the question here is what N reviewed cells per
slide buy: a reviewer labels N of the detected tumour cells positive or negative, and the cut moves to
the value that agrees best with them (ties: the one nearest the automatic cut).  Simulated with the
labelled cells: a reviewed cell is a detection matched to a labelled tumour cell, its review = its
label.  Two ways of choosing the N cells: "borderline" (the N nearest the automatic cut: what a
reviewer checks first) and "random" (mean over 20 draws).  The stated % uses the new cut for every
cell, the reviewed ones included (a field here holds 50-250 cells, a slide thousands: substituting the
reviewed labels would flatter the number).

Leave-one-source-out: each held-out source is segmented and cut with the settings its fold chose
without it (bench/RESULTS-classic-loso.json), so N = 0 reproduces the fold rows.  Real data only.

    .venv/bin/python bench/reviewed_cut.py --out bench/RESULTS-reviewed-cut.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from analysis import evaluation  # noqa: E402
from classic_loso import HELD_OUT_SPEC, SEGMENTATIONS, _prepare, cut_value, segment  # noqa: E402

REVIEWED = (0, 5, 10, 20, 40)
RANDOM_DRAWS = 20


def fitted_cut(dab: np.ndarray, positive: np.ndarray, prior: float) -> float:
    """The cut that misclassifies the fewest reviewed cells (DAB > cut = positive); among equals,
    the one nearest ``prior`` (the automatic cut).  No reviewed cell: ``prior``."""
    if len(dab) == 0:
        return prior
    values = np.sort(np.unique(dab))
    candidates = np.concatenate([[prior, values[0] - 1e-6, values[-1] + 1e-6], (values[1:] + values[:-1]) / 2])
    errors = np.array([np.sum((dab > c) != positive) for c in candidates])
    best = candidates[errors == errors.min()]
    return float(best[np.argmin(np.abs(best - prior))])


def field_error(dab, counted, cut, truth) -> float:
    labels = dab[counted] > cut
    return abs(100 * labels.mean() - 100 * (truth == 1).mean()) if len(labels) and len(truth) else float("nan")


def evaluate_source(fields, flt, cut_rule, radius_um, rng) -> dict:
    rows = {f"borderline {n}": [] for n in REVIEWED} | {f"random {n}": [] for n in REVIEWED[1:]}
    rows["all matched (oracle)"] = []
    for dab, counted, pred_idx, matched_truth, truth in _prepare(fields, flt, radius_um):
        t0 = cut_value(dab, cut_rule)
        matched_dab = dab[counted][pred_idx]
        matched_pos = matched_truth == 1
        order = np.argsort(np.abs(matched_dab - t0), kind="stable")
        for n in REVIEWED:
            pick = order[:n]
            rows[f"borderline {n}"].append(field_error(dab, counted, fitted_cut(matched_dab[pick], matched_pos[pick], t0), truth))
            if n:
                draws = [rng.permutation(len(matched_dab))[:n] for _ in range(RANDOM_DRAWS)]
                rows[f"random {n}"].append(float(np.mean([
                    field_error(dab, counted, fitted_cut(matched_dab[p], matched_pos[p], t0), truth) for p in draws])))
        rows["all matched (oracle)"].append(field_error(dab, counted, fitted_cut(matched_dab, matched_pos, t0), truth))
    return {k: {"mean": round(float(np.nanmean(v)), 2), "max": round(float(np.nanmax(v)), 2),
                "per_field": [round(x, 2) for x in v]} for k, v in rows.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", default="bench/RESULTS-classic-loso.json")
    parser.add_argument("--out", default="bench/RESULTS-reviewed-cut.json")
    parser.add_argument("--radius-um", type=float, default=4.0)
    args = parser.parse_args(argv)
    began = time.monotonic()
    folds = json.loads(Path(args.folds).read_text(encoding="utf-8"))["folds"]
    rng = np.random.default_rng(0)
    result = {"title": "Classic positivity cut fitted to N reviewed cells per field, leave-one-source-out",
              "machine": evaluation.machine_description(), "radius_um": args.radius_um, "sources": {}}
    for fold in folds:
        s = fold["settings"]
        fields = [segment(f, SEGMENTATIONS[s["segmentation"]])
                  for f in evaluation.load_data(HELD_OUT_SPEC[fold["held_out"]]).fields]
        flt = (s["min_area"], s["min_minor"], s["max_elongation"])
        rows = evaluate_source(fields, flt, tuple(s["cut"]), args.radius_um, rng)
        result["sources"][fold["held_out"]] = rows
        print(fold["held_out"], {k: v["mean"] for k, v in rows.items()}, flush=True)
    result["seconds"] = round(time.monotonic() - began, 1)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
