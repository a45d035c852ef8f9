"""Carrying a pathologist's corrections to a re-run of the slide: time and memory of the one-to-one match.

    .venv/bin/python bench/carry_speed.py [--points 600000] [--corrections 1200] [--repeats 3]

Appends a section to bench/RESULTS-merge.md. viewer.carry.plan_carry (with match_runs inside) runs after
a job's commit, once per re-run of a slide that has corrections; nothing waits on it but the viewer's
"corrections carried" message. Two SYNTHETIC inputs, both at 0.25 µm/px with the 4 µm carry radius:

* realistic: nucleus-like centres on a jittered lattice 12.5 µm apart; the new run finds each again
  within ~1 µm, misses 5 % and adds 5 % of its own (its store indices are shuffled); a third of the
  corrections are deletes, a third reclassifications, a third added cells;
* dense worst case: centres 3 µm apart, closer than the carry radius, so the points link into clusters
  larger than viewer.carry.HUNGARIAN_MAX and are matched greedily (nearest pairs first).

Each case runs in a fresh interpreter so that ru_maxrss is its own peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MPP = 0.25
RADIUS_UM = 4.0
CASES = {"realistic": 12.5, "dense": 3.0}  # µm between lattice points


def make_runs(n_points: int, spacing_um: float, seed: int = 0):
    """(old_xy, new_xy, new_labels): an earlier run and a re-run of the same SYNTHETIC slide, level-0 px."""
    rng = np.random.default_rng(seed)
    spacing = spacing_um / MPP
    cols = int(np.sqrt(n_points))
    rows = -(-n_points // cols)
    gy, gx = np.mgrid[0:rows, 0:cols]
    cells = (np.stack([gx.ravel(), gy.ravel()], 1)[:n_points] + 0.5) * spacing
    cells += rng.uniform(-0.2, 0.2, cells.shape) * spacing
    old_xy = cells + rng.normal(0, 0.5 / MPP, cells.shape)
    found = rng.random(len(cells)) >= 0.05
    extra = rng.uniform(0, cells.max(0), (int(0.05 * len(cells)), 2))
    new_xy = np.vstack([cells[found] + rng.normal(0, 0.5 / MPP, (found.sum(), 2)), extra])
    new_xy = new_xy[rng.permutation(len(new_xy))]
    new_labels = rng.integers(1, 3, len(new_xy)).astype(np.int8)
    return old_xy, new_xy, new_labels


def child(args) -> None:
    """One case in a fresh process; prints a JSON line."""
    import resource

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pdl1site.settings")
    import django

    django.setup()
    import scipy.optimize  # noqa: F401  (imported once per worker; not part of a carry's cost)
    import scipy.spatial  # noqa: F401

    from viewer.carry import plan_carry
    from viewer.overlay import CorrectionState

    old_xy, new_xy, new_labels = make_runs(args.points, CASES[args.child])
    rng = np.random.default_rng(1)
    third = args.corrections // 3
    picked = rng.choice(len(old_xy), 2 * third, replace=False)
    state = CorrectionState(deleted=set(picked[:third].tolist()),
                            relabelled={int(i): int(rng.integers(1, 3)) for i in picked[third:]})
    for k in range(args.corrections - 2 * third):  # added cells, at places a nucleus was (found or not)
        x, y = old_xy[rng.integers(len(old_xy))] + rng.normal(0, 0.5 / MPP, 2)
        state.added[10_000_000 + k] = [float(x), float(y), int(rng.integers(1, 3))]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    plan = plan_carry(old_xy, state, {}, new_xy, new_labels, RADIUS_UM / MPP)
    seconds = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "old": len(old_xy), "new": len(new_xy), "ops": len(plan.ops),
                      "missed": len(plan.missed), "already": plan.already,
                      "extra_peak_mb": round(rss_after - rss_before, 1), "peak_mb": round(rss_after, 1)}))


def run_case(args, case: str) -> list[dict]:
    out = []
    for _ in range(args.repeats):
        proc = subprocess.run([sys.executable, __file__, "--child", case, "--points", str(args.points),
                               "--corrections", str(args.corrections)], cwd=ROOT, capture_output=True, text=True,
                              check=False)
        if proc.returncode:
            raise SystemExit(f"the {case} case failed:\n{proc.stderr[-3000:]}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=600_000)
    ap.add_argument("--corrections", type=int, default=1200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS-merge.md")
    args = ap.parse_args()
    if args.child:
        return child(args)
    rows = {case: run_case(args, case) for case in CASES}
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else ""
    lines = [f"\n## Carrying corrections to a re-run (viewer.carry.plan_carry), {time.strftime('%Y-%m-%d %H:%M')}\n",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores ({cpu}), no GPU; shared with other work while "
             "it ran (wall clock under that load)",
             f"- software: Python {platform.python_version()}, numpy {np.__version__}",
             f"- command: python bench/carry_speed.py --points {args.points} --corrections {args.corrections} "
             f"--repeats {args.repeats}",
             f"- input (SYNTHETIC): {args.points:,} detections in the earlier run, the re-run finds 95 % again "
             f"within ~1 µm plus 5 % of its own; {args.corrections:,} corrections (deletes, reclassifications, "
             f"added cells in thirds); 0.25 µm/px, carry radius {RADIUS_UM:g} µm",
             "", "| case | lattice | median | runs | extra peak RSS | carried ops | not carried |",
             "|---|---|---|---|---|---|---|"]
    for case, runs in rows.items():
        secs = [r["seconds"] for r in runs]
        lines.append(f"| {case} | {CASES[case]:g} µm | {statistics.median(secs):.2f} s | "
                     f"{', '.join(f'{s:.2f}' for s in secs)} | {max(r['extra_peak_mb'] for r in runs):.0f} MB | "
                     f"{runs[0]['ops']} | {runs[0]['missed']} |")
    lines.append("\nIt runs after the job's commit (viewer.carry.carry_after_commit); the slide's viewer shows the "
                 "carried corrections when it is done. No target was set by an issue; recorded so a change that "
                 "slows it shows.\n")
    text = "\n".join(lines)
    with open(args.out, "a") as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
