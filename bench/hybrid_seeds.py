"""Exploration: the classic segmentation seeded by a network's nucleus points (issue 15, decision 13).

Decision 11 found the classic detector's main loss on BCData to be touching nuclei segmented as
one (a pale negative nucleus merged into a dark positive one: the watershed relief gives it no
seed).  The leave-one-source-out network finds more of the labelled nuclei (recall ~0.83 on
BCData held out against classic's ~0.75) but also every non-tumour nucleus.  Here the network only
*seeds* the classic watershed: the classic foreground mask, size filter, compartment DAB and
adaptive cut are unchanged, so a network point outside the classic foreground adds nothing.

Modes (fixed before the run): "union" = classic seeds plus every network point farther than the
split distance from one; "network" = network points only, classic seeds kept in foreground
components that hold no network point.  Scored on the held-out source with the network trained
without it (bench/train_loso.py runs) and the shipped classic settings; the baseline row is the
shipped classic on the same fields.  Real data only.

    .venv/bin/python bench/hybrid_seeds.py --runs var/loso --out bench/RESULTS-hybrid-seeds.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis import classic, evaluation  # noqa: E402
from analysis.classic import ClassicParams  # noqa: E402
from analysis.detectors import ClassicDetector, Detections, ModelDetector  # noqa: E402

HELD_OUT = {"bcdata": "bcdata", "shidc": "shidc"}


def _segment_with_seeds(rgb, mpp, p: ClassicParams, seeds_xy: np.ndarray, mode: str):
    """classic._segment_nuclei with the watershed markers taken from ``seeds_xy`` as ``mode`` says."""
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    h, dab = classic.deconvolve(rgb, p.vectors)
    det = np.clip(h, 0, None) + np.clip(dab - p.haze_od, 0, None)
    det = det - classic._background(det, p.background_radius_um / mpp)
    sm = ndimage.gaussian_filter(det, p.sigma_um / mpp)
    fg = ndimage.binary_fill_holes(sm > p.detection_threshold)
    fg = ndimage.binary_opening(fg, iterations=max(int(round(0.5 / mpp)), 1))
    blob = ndimage.gaussian_filter(det, p.seed_sigma_um / mpp)
    dist = ndimage.distance_transform_edt(fg) * mpp
    relief = blob / classic._BLOB_SCALE_OD + dist / classic._DIST_SCALE_UM
    md = max(int(round(p.split_um / mpp)), 1)
    comps, _ = ndimage.label(fg)
    peaks = peak_local_max(relief, min_distance=md, labels=comps, exclude_border=False)  # (row, col)

    rc = np.round(np.asarray(seeds_xy, np.float64)[:, ::-1]).astype(int).reshape(-1, 2)
    inside = ((rc >= 0) & (rc < fg.shape)).all(1)
    rc = rc[inside]
    rc = rc[fg[rc[:, 0], rc[:, 1]]]
    if mode == "union":
        if len(rc) and len(peaks):
            d = np.sqrt(((rc[:, None, :] - peaks[None, :, :]) ** 2).sum(-1)).min(1)
            rc = rc[d >= md]
        markers_rc = np.concatenate([peaks, rc]) if len(rc) else peaks
    elif mode == "network":
        seeded = set(comps[rc[:, 0], rc[:, 1]].tolist()) if len(rc) else set()
        keep = np.array([comps[r, c] not in seeded for r, c in peaks], bool) if len(peaks) else np.zeros(0, bool)
        markers_rc = np.concatenate([rc, peaks[keep]]) if len(rc) else peaks
    else:
        raise ValueError(mode)
    markers = np.zeros(fg.shape, np.int32)
    if len(markers_rc):
        markers[tuple(np.asarray(markers_rc).T)] = np.arange(1, len(markers_rc) + 1)
    lab = watershed(-relief, markers, mask=fg)
    return classic.size_filtered(lab, mpp, p), h, dab, det


@dataclass
class HybridDetector:
    network: ModelDetector
    mode: str
    name: str = "hybrid"
    params: ClassicParams = None

    def detect(self, rgb, mpp) -> Detections:
        p = self.params or ClassicParams(compartment="nucleus")
        seeds = self.network.detect(rgb, mpp).xy
        original = classic._segment_nuclei
        classic._segment_nuclei = lambda rgb_, mpp_, p_: _segment_with_seeds(rgb_, mpp_, p_, seeds, self.mode)
        try:
            found = classic.detect_classic(rgb, float(mpp), p)
        finally:
            classic._segment_nuclei = original
        return Detections(found.xy, found.labels, found.scores, found.dab_nucleus)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="var/loso")
    parser.add_argument("--out", default="bench/RESULTS-hybrid-seeds.json")
    parser.add_argument("--radius-um", type=float, default=4.0)
    parser.add_argument("--min-score", type=float, action="append", help="network point score floor (repeatable)")
    args = parser.parse_args(argv)
    rows = []
    began = time.monotonic()
    for held_out, spec in HELD_OUT.items():
        data = evaluation.load_data(spec)
        model_path = Path(args.runs) / f"without-{held_out}" / "model.pt"
        if not model_path.exists():
            print(f"{held_out}: no run at {model_path}, skipped", flush=True)
            continue
        dets = [ClassicDetector(compartment="nucleus", name="classic (shipped)")]
        for min_score in args.min_score or [0.5]:
            net = ModelDetector.from_checkpoint(model_path, name=f"network without {held_out}", min_score=min_score)
            for mode in ("union", "network"):
                dets.append(HybridDetector(net, mode, name=f"hybrid {mode}, network score >= {min_score}"))
        for det in dets:
            s = evaluation.score_detector(det, data, args.radius_um)
            row = {"held_out": held_out, "detector": det.name, "n_truth": s.n_truth, "n_pred": s.n_pred,
                   "f1": s.f1, "pct_mean": s.positive_pct_abs_error, "pct_max": s.positive_pct_abs_error_max,
                   "per_field": s.per_field}
            rows.append(row)
            print(f"{held_out:7s} {det.name:40s} F1 {s.f1['detection']:.3f} pos {s.f1['positive']:.3f} "
                  f"neg {s.f1['negative']:.3f} n {s.n_pred}/{s.n_truth} err {s.positive_pct_abs_error:.1f} "
                  f"max {s.positive_pct_abs_error_max:.1f}", flush=True)
    out = {"machine": evaluation.machine_description(), "seconds": round(time.monotonic() - began),
           "radius_um": args.radius_um, "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
