"""Accuracy on real tissue from labs a detector has never seen: the leave-one-source-out table (issue 15).

For each real source (DeepLIIF, SHIDC-B-Ki-67, BCData), score on that source alone:
- the run of bench/train_loso.py that trained without it (the measure of an unseen lab),
- the shipped starter (fine-tuned on the DeepLIIF left halves: its DeepLIIF row is not unseen),
- the classic detector with its constant DAB cut and with the adaptive (per-image) cut.
Then the candidate default ("all-real") on each source's validation images.  Writes
bench/RESULTS-accuracy.json and the tables for bench/RESULTS-accuracy.md.  Plain Python, no Django.

    .venv/bin/python bench/accuracy_loso.py --runs var/loso --out bench/RESULTS-accuracy.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis import evaluation  # noqa: E402
from analysis.accuracy import MEASURED_ERROR_FILE  # noqa: E402
from analysis.hashing import sha256_file  # noqa: E402
from analysis.classic import ADAPTIVE, DEFAULT_DAB_THRESHOLD, ClassicParams  # noqa: E402
from analysis.detectors import ClassicDetector, ModelDetector  # noqa: E402

STARTER = "analysis/starter/fcn-r18-starter-v5.pt"
# Held-out source -> the data scored.  DeepLIIF: only the right halves, which no run trained on
# (every run starts from the starter, which saw the left halves of the same two fields).
HELD_OUT = {"bcdata": "bcdata", "shidc": "shidc", "deepliif": "deepliif:heldout"}
TARGETS = {"model": {"f1": 0.85, "pct": 3.0}, "classic": {"pct": 5.0}}


def detectors_for(held_out: str, runs: Path) -> list:
    out = [
        ClassicDetector(compartment="nucleus", params=ClassicParams(dab_threshold=DEFAULT_DAB_THRESHOLD["nucleus"]),
                        name="classic (constant cut)"),
        ClassicDetector(compartment="nucleus", params=ClassicParams(dab_threshold=ADAPTIVE),
                        name="classic (adaptive cut)"),
        ModelDetector.from_checkpoint(STARTER, name="fcn-r18-starter-v5"),
    ]
    loso = runs / f"without-{held_out}" / "model.pt"
    if loso.exists():
        out.append(ModelDetector.from_checkpoint(loso, name=f"fcn-r18 trained without {held_out}"))
    return out


def row(score, held_out: str, kind: str) -> dict:
    d = score.to_dict()
    d.update(held_out=held_out, kind=kind)
    return d


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="var/loso")
    parser.add_argument("--out", default="bench/RESULTS-accuracy.json")
    parser.add_argument("--radius-um", type=float, default=4.0)
    parser.add_argument("--write-measured", action="store_true",
                        help="also write analysis/measured_error.json (the errors slide intervals are widened by)")
    parser.add_argument("--classic-only", action="store_true",
                        help="rescore the classic detector only; keep the network rows of the existing --out file")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    began = time.monotonic()
    loso_rows, within_rows = [], []
    if args.classic_only:
        previous = json.loads(Path(args.out).read_text(encoding="utf-8"))
        loso_rows = [r for r in previous["leave_one_source_out"] if r["kind"] == "model"]
        within_rows = previous["within_source_validation"]
    for held_out, spec in HELD_OUT.items():
        data = evaluation.load_data(spec)
        for det in detectors_for(held_out, runs):
            if args.classic_only and not isinstance(det, ClassicDetector):
                continue
            kind = "classic" if isinstance(det, ClassicDetector) else "model"
            score = evaluation.score_detector(det, data, args.radius_um)
            loso_rows.append(row(score, held_out, kind))
            print(f"{held_out:9s} {score.detector:36s} F1 {score.f1['detection']:.3f} "
                  f"pos {score.f1['positive']:.3f} neg {score.f1['negative']:.3f} "
                  f"pct {score.positive_pct_abs_error:.1f} ({score.positive_pct_abs_error_max:.1f})", flush=True)
    candidate = runs / "all-real" / "model.pt"
    if candidate.exists() and not args.classic_only:
        det = ModelDetector.from_checkpoint(candidate, name="fcn-r18 all-real (candidate default)")
        for spec in ("bcdata:val", "shidc:val", "deepliif:heldout"):
            score = evaluation.score_detector(det, evaluation.load_data(spec), args.radius_um)
            within_rows.append(row(score, spec, "model"))
    result = {
        "title": "Accuracy on real Ki-67 tissue: leave-one-source-out",
        "machine": evaluation.machine_description(),
        "radius_um": args.radius_um,
        "targets": TARGETS,
        "seconds": round(time.monotonic() - began, 1),
        "leave_one_source_out": loso_rows,
        "within_source_validation": within_rows,
        "legend": evaluation.LEGEND,
    }
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.write_measured:
        table = measured_errors(result, runs)
        MEASURED_ERROR_FILE.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {MEASURED_ERROR_FILE}")
    print(markdown(result))
    print(targets_table(result))
    return 0


def measured_errors(result: dict, runs: Path) -> dict:
    """Per detector, the worst unseen source's mean |positive % error|: what analysis.accuracy reads.

    Keys: "classic:nucleus:adaptive" (the default for nuclear markers; nothing here measures the
    membrane compartment) and the sha256 of each model file.
    Only truly unseen sources count: the starter's and the runs' DeepLIIF rows are not unseen.
    """
    rows = result["leave_one_source_out"]
    day = time.strftime("%Y-%m-%d")

    def worst(name_test, sources):
        values = [(r["positive_pct_abs_error"], r["held_out"]) for r in rows
                  if name_test(r["detector"]) and r["held_out"] in sources and r["positive_pct_abs_error"] is not None]
        return max(values) if values else None

    out = {}
    classic = worst(lambda d: d == "classic (adaptive cut)", HELD_OUT)
    # The shipped settings were chosen on all three sources (bench/classic_loso.py), so their own rows
    # are not held out; the held-out measure is the tuning procedure's: each fold's settings, tuned
    # without that source, scored on it.  The interval takes the worse of the two.
    folds = [(f["held_out_score"]["positive_pct_abs_error"], f["held_out"]) for f in classic_folds()]
    if classic or folds:
        classic = max([c for c in [classic] if c] + folds)
        out["classic:nucleus:adaptive"] = {"positive_pct_error_pp": round(classic[0], 2), "basis": (
            f"classic, adaptive cut: worst mean |positive % error| on real Ki-67 tissue of an unseen lab "
            f"({classic[1]}; settings tuned leave-one-source-out, bench/classic_loso.py), "
            f"bench/RESULTS-accuracy.md {day}")}
    starter = worst(lambda d: d == "fcn-r18-starter-v5", ("bcdata", "shidc"))
    if starter:
        out[sha256_file(STARTER)] = {"positive_pct_error_pp": round(starter[0], 2), "basis": (
            f"fcn-r18-starter-v5: worst mean |positive % error| on real Ki-67 tissue of an unseen lab "
            f"({starter[1]}), bench/RESULTS-accuracy.md {day}")}
    recipe = worst(lambda d: d.startswith("fcn-r18 trained without"), ("bcdata", "shidc"))
    candidate = runs / "all-real" / "model.pt"
    if recipe and candidate.exists():
        out[sha256_file(candidate)] = {"positive_pct_error_pp": round(recipe[0], 2), "basis": (
            f"its training recipe run without the test lab: worst mean |positive % error| on real Ki-67 tissue "
            f"({recipe[1]}), leave-one-source-out, bench/RESULTS-accuracy.md {day}")}
    return {"source": "bench/accuracy_loso.py", "date": day, "detectors": out}


CLASSIC_LOSO = Path(__file__).resolve().parent / "RESULTS-classic-loso.json"


def classic_folds() -> list[dict]:
    """bench/classic_loso.py's folds (the classic settings tuned without each source), if it ran."""
    if not CLASSIC_LOSO.is_file():
        return []
    return json.loads(CLASSIC_LOSO.read_text(encoding="utf-8"))["folds"]


def _f(v, digits=3):
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def markdown(result: dict) -> str:
    lines = ["| held-out source | detector | fields | truth | detected | F1 | F1 pos | F1 neg | pos-% error mean | max |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for f in classic_folds():
        r = f["held_out_score"]
        lines.append(f"| {f['held_out']} | classic, settings tuned without it (bench/classic_loso.py) | - | {r['n_truth']} | "
                     f"{r['n_pred']} | {_f(r['f1']['detection'])} | {_f(r['f1']['positive'])} | {_f(r['f1']['negative'])} | "
                     f"{_f(r['positive_pct_abs_error'], 1)} | {_f(r['positive_pct_abs_error_max'], 1)} |")
    for r in result["leave_one_source_out"] + result["within_source_validation"]:
        lines.append(f"| {r['held_out']} | {r['detector']} | {r['fields']} | {r['n_truth']} | {r['n_pred']} | "
                     f"{_f(r['f1']['detection'])} | {_f(r['f1']['positive'])} | {_f(r['f1']['negative'])} | "
                     f"{_f(r['positive_pct_abs_error'], 1)} | {_f(r['positive_pct_abs_error_max'], 1)} |")
    return "\n".join(lines)


def targets_table(result: dict) -> str:
    """Issue 15's targets per held-out source: model F1 >= 0.85 and pos-% error <= 3; classic <= 5."""
    lines = ["| held-out source | detector | F1 (target >= 0.85) | pos-% error (target) | met |", "|---|---|---|---|---|"]
    for r in result["leave_one_source_out"]:
        pct, f1 = r["positive_pct_abs_error"], r["f1"]["detection"]
        if r["kind"] == "classic":
            ok = pct is not None and pct <= TARGETS["classic"]["pct"]
            verdict = "yes" if ok else "no"
            if classic_folds():  # the shipped settings were chosen on every source, this one included
                verdict += " (not held out: settings chosen on all three)"
            lines.append(f"| {r['held_out']} | {r['detector']} | {_f(f1)} | {_f(pct, 1)} (<= 5) | {verdict} |")
        elif "without" in r["detector"]:
            ok = pct is not None and f1 is not None and pct <= TARGETS["model"]["pct"] and f1 >= TARGETS["model"]["f1"]
            lines.append(f"| {r['held_out']} | {r['detector']} | {_f(f1)} | {_f(pct, 1)} (<= 3) | {'yes' if ok else 'no'} |")
    for f in classic_folds():
        pct = f["held_out_score"]["positive_pct_abs_error"]
        lines.append(f"| {f['held_out']} | classic, settings tuned without it | {_f(f['held_out_score']['f1']['detection'])} | "
                     f"{_f(pct, 1)} (<= 5) | {'yes' if pct <= TARGETS['classic']['pct'] else 'no'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
