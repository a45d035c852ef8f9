"""Scanner consistency: the same (SYNTHETIC) tissue "scanned" by two simulated scanners.

    .venv/bin/python bench/scanner_consistency.py [--fields 6] [--size-um 256]

Scanner A: analysis.synthetic at 0.25 µm/px with the default (Ruifrok-Johnston)
colours.  Scanner B: the SAME tissue (same seed; the generator places and sizes
every cell in micrometres, so the cells coincide exactly in µm) rendered at
0.5 µm/px and passed through :func:`scanner_b` - rotated stain hues, a
white-balance cast and a gamma curve.  Both scanners are simulated; nothing
here is real tissue.

For every detector configuration it reports total cells A vs B (relative
difference), positive percentage A vs B (percentage points) and F1 against the
exact truth on each scan, and whether "nearly the same" holds (count
difference <= 5 %, positive-% difference <= 2 points).  Writes
bench/RESULTS-scanners.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MPP_A, MPP_B = 0.25, 0.5
COUNT_TOL_PCT, POS_TOL_PP = 5.0, 2.0
SEED0 = 7_300_000
REFERENCE_SEED = 7_399_999  # a separate scanner-A field: the haematoxylin intensity reference


# ----------------------------------------------------------------------------
# Scanner B simulation (bench only, not app code)
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ScannerColour:
    h_rotation_deg: float = 8.0       # haematoxylin hue shift (rotation about the grey axis direction)
    dab_rotation_deg: float = -7.0    # DAB hue shift, the other way
    od_scale: float = 1.0             # stain intensity / exposure (multiplies concentrations)
    white_balance: tuple = (0.95, 0.98, 1.0)  # per-channel gain: glass becomes (242, 250, 255)
    gamma: float = 1.1                # I_out = 255 * (I / 255) ** gamma  (OD x gamma)

    def describe(self) -> str:
        return (f"H hue {self.h_rotation_deg:+g}°, DAB hue {self.dab_rotation_deg:+g}°, concentration x{self.od_scale:g}, "
                f"white balance gains {tuple(self.white_balance)}, gamma {self.gamma:g}")


# The two simulated second scanners every scanner bench uses (this one, scanner_consistency_real.py).
PROFILES = {"moderate": ScannerColour(),
            "strong": ScannerColour(h_rotation_deg=10.0, dab_rotation_deg=-10.0, od_scale=1.0,
                                    white_balance=(0.92, 0.96, 1.0), gamma=1.25)}


def _hue_rotate(v, deg):
    """Rotate unit OD vector ``v`` by ``deg`` towards the hue direction (perpendicular to v and grey)."""
    v = np.asarray(v, float) / np.linalg.norm(v)
    u = np.cross(np.ones(3) / np.sqrt(3), v)
    u /= np.linalg.norm(u)
    a = np.radians(deg)
    return np.cos(a) * v + np.sin(a) * u


def scanner_b_vectors(colour: ScannerColour):
    from analysis.stains import DEFAULT_VECTORS, StainVectors

    return StainVectors(haematoxylin=tuple(_hue_rotate(DEFAULT_VECTORS.haematoxylin, colour.h_rotation_deg)),
                        dab=tuple(_hue_rotate(DEFAULT_VECTORS.dab, colour.dab_rotation_deg)))


def scanner_b(rgb: np.ndarray, colour: ScannerColour = ScannerColour()) -> np.ndarray:
    """What a second scanner with another spectral response, white balance and gamma would give.

    The default-colour image is deconvolved (exactly, residual kept) and its
    concentrations recomposed with rotated stain vectors; then the white
    balance gains and the gamma curve act on the light.
    """
    from analysis import stains

    c = stains.concentrations(rgb)
    v = scanner_b_vectors(colour)
    # Residual kept on the *default* residual direction: noise stays noise.
    od = (c[..., :2] * colour.od_scale) @ v.matrix[:2].astype(np.float32)
    od = od + c[..., 2:3] * stains.DEFAULT_VECTORS.matrix[2].astype(np.float32)
    inten = 255.0 * np.power(10.0, -od) * np.asarray(colour.white_balance, np.float32)
    inten = 255.0 * np.power(np.clip(inten / 255.0, 0, 1), colour.gamma)
    return np.clip(np.rint(inten), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------
# Detector configurations
# ----------------------------------------------------------------------------

def configurations(h_reference: float, with_model: bool):
    """(name, note, run(rgb, mpp) -> (xy, labels), extra-info) for every configuration."""
    from analysis.classic import ClassicParams
    from analysis.detectors import ClassicDetector, ModelDetector
    from analysis.stain_normalisation import estimate_stains, normalise

    classic = ClassicDetector(compartment="membrane")
    infos: dict = {}

    def remember(name, key, est):
        infos.setdefault(name, {})[key] = {
            "angle_h_deg": round(est.angle_h_deg, 2), "angle_dab_deg": round(est.angle_dab_deg, 2),
            "background": [round(float(x), 1) for x in est.background],
            "h_percentile": round(est.h_percentile, 4), "fallbacks": est.fallbacks}

    def run_classic(rgb, mpp, key):
        d = classic.detect(rgb, mpp)
        return d.xy, d.labels

    def run_classic_vectors(rgb, mpp, key):
        est = estimate_stains(rgb)
        remember("classic + per-field stain vectors", key, est)
        det = replace(classic, params=ClassicParams(vectors=est.vectors))
        d = det.detect(rgb, mpp)
        return d.xy, d.labels

    def run_classic_norm(rgb, mpp, key):
        out, est = normalise(rgb)
        remember("classic + stain normalisation", key, est)
        d = classic.detect(out, mpp)
        return d.xy, d.labels

    def run_classic_norm_scaled(rgb, mpp, key):
        out, _ = normalise(rgb, h_reference=h_reference)
        d = classic.detect(out, mpp)
        return d.xy, d.labels

    configs = [
        ("classic (default vectors)", "ClassicDetector(membrane), fixed Ruifrok-Johnston vectors", run_classic),
        ("classic + per-field stain vectors", "Macenko vectors per field via ClassicParams(vectors=...); "
         "no white-balance / intensity correction", run_classic_vectors),
        ("classic + stain normalisation", "per field: estimate background + vectors, recompose with the "
         "default vectors, then classic", run_classic_norm),
        ("classic + stain normalisation + H-intensity scale", f"as above, concentrations scaled so the "
         f"99th-percentile H matches a reference scanner-A field (h_reference={h_reference:.3f})",
         run_classic_norm_scaled),
    ]
    starter = ROOT / "analysis" / "starter"
    if with_model and starter.is_dir():
        for ckpt in sorted(starter.glob("*.pt")):
            from analysis.nets import load_checkpoint

            # Built directly (not from_checkpoint): that hashes the file via the Django registry.
            net, config, extra = load_checkpoint(ckpt)
            model = ModelDetector(net, config, name=ckpt.stem, version="starter", device="cpu", extra=extra)

            def run_model(rgb, mpp, key, model=model):
                d = model.detect(rgb, mpp)
                return d.xy, d.labels

            def run_model_norm(rgb, mpp, key, model=model):
                out, _ = normalise(rgb)
                d = model.detect(out, mpp)
                return d.xy, d.labels

            model_note = _starter_note(ckpt.parent / "model_card.json")
            configs.append((f"model {ckpt.stem}", f"ModelDetector, resamples to {model.working_mpp} µm/px; {model_note}",
                            run_model))
            configs.append((f"model {ckpt.stem} + stain normalisation", f"as above on normalised input; {model_note}",
                            run_model_norm))
    return configs, infos


def _starter_note(card_path: Path) -> str:
    """What the starter's own card measured, so the table says how far to trust the model rows."""
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        held = card["metrics"]["heldout_synthetic"]
        real = card["metrics"].get("real_deepliif_heldout") or {}
        sources = " + ".join(src["source"] for src in card["training_data"]["sources"])
        note = (f"starter trained on {sources} (synthetic = SYNTHETIC fields); its card: held-out SYNTHETIC F1 pos/neg "
                f"{held['f1']['positive']:.3f}/{held['f1']['negative']:.3f}")
        if real:
            note += (f", held-out real DeepLIIF Ki67 halves F1 pos/neg "
                     f"{real['f1']['positive']:.3f}/{real['f1']['negative']:.3f}")
        return note
    except (OSError, KeyError, TypeError, ValueError):
        return "starter model; see its MODEL_CARD"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=6)
    parser.add_argument("--size-um", type=float, default=256.0)
    parser.add_argument("--radius-um", type=float, default=4.0)
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-scanners"))
    args = parser.parse_args(argv)

    import torch

    from analysis import synthetic
    from analysis.matching import evaluate
    from analysis.stain_normalisation import estimate_stains

    torch.set_num_threads(2)
    profiles = PROFILES
    na, nb = int(round(args.size_um / MPP_A)), int(round(args.size_um / MPP_B))
    fields = []
    for k in range(args.fields):
        a = synthetic.render_field((na, na), mpp=MPP_A, seed=SEED0 + k)
        b = synthetic.render_field((nb, nb), mpp=MPP_B, seed=SEED0 + k)
        # Same tissue: identical cells in µm (checked, not assumed).
        assert len(a.points) == len(b.points) and np.array_equal(a.labels, b.labels)
        assert np.allclose(a.points * MPP_A, b.points * MPP_B, atol=1e-6)
        fields.append((a, {p: scanner_b(b.rgb, c) for p, c in profiles.items()}, b))
    ref = synthetic.render_field((na, na), mpp=MPP_A, seed=REFERENCE_SEED)
    h_reference = estimate_stains(ref.rgb).h_percentile

    configs, infos = configurations(h_reference, with_model=not args.no_model)

    def measure(run, rgb, mpp, truth, key):
        xy, labels = run(rgb, mpp, key)
        ev = evaluate(xy, labels, truth.points, truth.labels, mpp, radius_um=args.radius_um)
        return {"n": int(len(labels)), "pos": int((np.asarray(labels) == 1).sum()),
                "truth": int(len(truth.labels)), "truth_pos": int((truth.labels == 1).sum()),
                "tp": ev.detection.tp, "tp_pos": ev.per_class[1].tp, "tp_neg": ev.per_class[2].tp,
                "pos_pct": ev.positive_pct_pred}

    rows = []
    for name, note, run in configs:
        t0 = time.perf_counter()
        per_a = [measure(run, a.rgb, MPP_A, a, f"field{k}-A") for k, (a, _, _) in enumerate(fields)]
        secs_a = time.perf_counter() - t0
        for prof in profiles:
            t0 = time.perf_counter()
            per = {"A": per_a,
                   "B": [measure(run, bs[prof], MPP_B, b, f"field{k}-B-{prof}") for k, (_, bs, b) in enumerate(fields)]}
            secs = secs_a + time.perf_counter() - t0
            row = {"config": name, "scanner_b": prof, "note": note, "seconds": round(secs, 1)}
            for scan in ("A", "B"):
                p = per[scan]
                n, pos = sum(x["n"] for x in p), sum(x["pos"] for x in p)
                truth, tp = sum(x["truth"] for x in p), sum(x["tp"] for x in p)
                row[f"cells_{scan}"] = n
                row[f"pos_pct_{scan}"] = 100.0 * pos / n if n else float("nan")
                row[f"f1_{scan}"] = 2 * tp / (n + truth) if (n + truth) else 1.0
                tpc = sum(x["tp_pos"] + x["tp_neg"] for x in p)
                row[f"f1_class_{scan}"] = 2 * tpc / (n + truth) if (n + truth) else 1.0
                row[f"per_field_{scan}"] = p
            row["truth_cells"] = sum(x["truth"] for x in per["A"])
            row["truth_pos_pct"] = 100.0 * sum(x["truth_pos"] for x in per["A"]) / row["truth_cells"]
            row["count_diff_pct"] = (100.0 * (row["cells_B"] - row["cells_A"]) / row["cells_A"]
                                     if row["cells_A"] else float("nan"))
            row["pos_diff_pp"] = row["pos_pct_B"] - row["pos_pct_A"]
            diffs = [100.0 * abs(fb["n"] - fa["n"]) / fa["n"] if fa["n"] else float("nan")
                     for fa, fb in zip(per["A"], per["B"])]
            pdiffs = [abs(fb["pos_pct"] - fa["pos_pct"]) for fa, fb in zip(per["A"], per["B"])]
            row["max_field_count_diff_pct"] = float(np.nanmax(diffs))
            row["max_field_pos_diff_pp"] = float(np.nanmax(pdiffs))
            row["nearly_same"] = bool(abs(row["count_diff_pct"]) <= COUNT_TOL_PCT
                                      and abs(row["pos_diff_pp"]) <= POS_TOL_PP)
            est = infos.get(name)
            row["stain_estimates"] = ({k: v for k, v in est.items() if k.endswith("-A") or k.endswith(prof)}
                                      if est else None)
            rows.append(row)
            print(f"{name} [{prof}]: A {row['cells_A']} cells {row['pos_pct_A']:.1f}% F1 {row['f1_A']:.3f} | "
                  f"B {row['cells_B']} cells {row['pos_pct_B']:.1f}% F1 {row['f1_B']:.3f} | "
                  f"count {row['count_diff_pct']:+.1f}% pos {row['pos_diff_pp']:+.2f} pp ({secs:.0f} s)", flush=True)

    meta = {
        "data": (f"SYNTHETIC: {args.fields} fields of {args.size_um:g} µm square (analysis.synthetic, seeds "
                 f"{SEED0}-{SEED0 + args.fields - 1}); scanner A {na}x{na} px at {MPP_A} µm/px, default colours; "
                 f"scanner B the same tissue {nb}x{nb} px at {MPP_B} µm/px with a simulated colour transform"),
        "scanner_b": {p: c.describe() for p, c in profiles.items()},
        "machine": f"{platform.machine()}, 2-core CPU (shared), no GPU; torch {torch.__version__}, 2 threads",
        "date": time.strftime("%Y-%m-%d"),
        "radius_um": args.radius_um,
        "thresholds": {"count_diff_pct": COUNT_TOL_PCT, "pos_diff_pp": POS_TOL_PP},
        "h_reference": h_reference,
        "command": "python bench/scanner_consistency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=float))
    out.with_suffix(".md").write_text(render_md(meta, rows))
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0


def render_md(meta, rows) -> str:
    lines = [
        "# Scanner consistency (SYNTHETIC: both scanners are simulated)",
        "",
        f"- data: {meta['data']}",
        *[f"- scanner B colour, {p}: {d}" for p, d in meta["scanner_b"].items()],
        f"- machine: {meta['machine']}",
        f"- date: {meta['date']}; matching radius {meta['radius_um']} µm; command: `{meta['command'].strip()}`",
        f"- \"nearly the same\" = |count difference| <= {COUNT_TOL_PCT:g} % and |positive-% difference| <= "
        f"{POS_TOL_PP:g} points (pooled over fields)",
        "",
        "| configuration | scanner B | truth cells (pos %) | cells A | cells B | count diff | pos % A | pos % B | pos diff (pp) "
        "| worst field: count / pos | F1 A | F1 B | class-aware F1 A / B | nearly the same? | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['scanner_b']} | {r['truth_cells']} ({r['truth_pos_pct']:.1f}) | {r['cells_A']} | {r['cells_B']} | "
            f"{r['count_diff_pct']:+.1f} % | {r['pos_pct_A']:.1f} | {r['pos_pct_B']:.1f} | {r['pos_diff_pp']:+.2f} | "
            f"{r['max_field_count_diff_pct']:.1f} % / {r['max_field_pos_diff_pp']:.1f} pp | {r['f1_A']:.3f} | "
            f"{r['f1_B']:.3f} | {r['f1_class_A']:.3f} / {r['f1_class_B']:.3f} | "
            f"{'yes' if r['nearly_same'] else 'NO'} | {r['seconds']} |")
    lines += ["", "Notes:", ""]
    for r in {r["config"]: r for r in rows}.values():
        lines.append(f"- **{r['config']}**: {r['note']}")
    lines += [
        "",
        "F1 = 2TP / (detections + truth), matched within the radius (class-agnostic); class-aware F1 counts a match "
        "only when the positive/negative call agrees.  count diff = (B - A) / A; pos diff = pos % B - pos % A.  "
        "Worst field = largest per-field |difference|.  s = seconds for scan A plus that scan B.  Per-field numbers and the stain estimates (angles from the "
        "default vectors, estimated white level, fallbacks) are in the .json.",
        "",
        "All images are SYNTHETIC (analysis.synthetic) and scanner B's colour is a simulated transform; "
        "classic's defaults were tuned on this generator.  These numbers show the mechanism, not performance on "
        "real scanners.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
