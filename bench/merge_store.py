"""Merge + dedupe and store 1,000,000 detections; viewport query time.

    .venv/bin/python bench/merge_store.py [--points 1000000] [--repeats 3]

Appends a section to bench/RESULTS-merge.md.  Targets: merge with dedupe <= 1 s and
<= 500 MB peak; a viewport query of ~10k points <= 100 ms.  The points are SYNTHETIC:
nucleus-like centres on a jittered lattice (12.5 µm apart at 0.25 µm/px), split into
per-tile batches, and every point within a strip of a core border found again by the
neighbouring tile (a copy moved by up to 2 px with its own score) - about 5 % duplicates.
Each measurement runs in a fresh interpreter so that ru_maxrss is that step's own peak;
scipy.spatial is imported before the clock starts (a worker imports it once).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTH, HEIGHT, MPP = 50_000, 48_000, 0.25
SPACING = 50  # px between lattice points
CORE = 2048  # level-0 px between tile cores
STRIP = 26  # px either side of a core border seen by both tiles: ~5 % duplicates
RADIUS = 12.0  # dedupe radius, px (3 µm)
QUERY_SIDE = 5000  # px: a box of ~10k points at this density


def make_input(n_points: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    cols = WIDTH // SPACING
    rows = max(int(round(n_points / 1.05 / cols)), 1)
    gy, gx = np.mgrid[0:rows, 0:cols]
    xy = np.stack([gx.ravel(), gy.ravel()], 1) * SPACING + SPACING / 2
    xy = (xy + rng.uniform(-10, 10, xy.shape)).astype(np.float32)
    height = rows * SPACING
    labels = rng.integers(1, 3, len(xy)).astype(np.int8)
    scores = rng.random(len(xy)).astype(np.float32)
    off_x = np.abs(((xy[:, 0] + CORE / 2) % CORE) - CORE / 2)  # distance to nearest vertical border
    off_y = np.abs(((xy[:, 1] + CORE / 2) % CORE) - CORE / 2)
    dup = np.flatnonzero((off_x < STRIP) | (off_y < STRIP))
    dup_xy = xy[dup] + rng.uniform(-2, 2, (len(dup), 2)).astype(np.float32)
    xy = np.concatenate([xy, dup_xy])
    labels = np.concatenate([labels, labels[dup]])
    scores = np.concatenate([scores, rng.random(len(dup)).astype(np.float32)])
    tile = (xy[:, 1] // CORE).astype(np.int64) * (WIDTH // CORE + 1) + (xy[:, 0] // CORE).astype(np.int64)
    order = np.argsort(tile, kind="stable")  # batches as a tiled run would deliver them
    return xy[order], labels[order], scores[order], tile[order], len(dup), height


def child(args) -> None:
    """One measurement in a fresh process; prints a JSON line."""
    import resource
    import tracemalloc

    from analysis.detection_store import open_store, write_store
    from analysis.merge import merge_detections
    import scipy.spatial  # noqa: F401  (imported once per worker; not part of a merge's cost)

    data = np.load(args.input)
    xy, labels, scores, tile = data["xy"], data["labels"], data["scores"], data["tile"]
    height = int(data["height"])
    cuts = np.flatnonzero(np.diff(tile)) + 1
    batches = list(zip(np.split(xy, cuts), np.split(labels, cuts), np.split(scores, cuts)))
    store = Path(args.input).with_suffix(".store")
    out = {"n_input": len(labels), "n_batches": len(batches)}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.child == "memory":
        tracemalloc.start()
        merged = merge_detections(batches, RADIUS)
        out["merge_traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.reset_peak()
        write_store(store, merged.xy, merged.labels, merged.scores, WIDTH, height, mpp=MPP)
        out["store_traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    else:
        t = time.perf_counter()
        merged = merge_detections(batches, RADIUS)
        out["merge_s"] = time.perf_counter() - t
        rss_merge = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t = time.perf_counter()
        write_store(store, merged.xy, merged.labels, merged.scores, WIDTH, height, mpp=MPP)
        out["store_s"] = time.perf_counter() - t
        out["merge_rss_delta_mb"] = rss_merge - rss_before
        out["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["store_bytes"] = os.path.getsize(store)
        reader = open_store(store)
        rng = np.random.default_rng(1)
        times, sizes = [], []
        side = min(QUERY_SIDE, height)  # a small --points run gives a short slide
        for _ in range(50):
            x0, y0 = rng.uniform(0, WIDTH - side), rng.uniform(0, height - side)
            t = time.perf_counter()
            hits = reader.query(x0, y0, x0 + side, y0 + side)
            times.append(time.perf_counter() - t)
            sizes.append(len(hits))
        out["query_ms_median"] = 1000 * statistics.median(times)
        out["query_ms_max"] = 1000 * max(times)
        out["query_points_median"] = int(statistics.median(sizes))
        t = time.perf_counter()
        reader.density(256 * 4)
        out["density_s"] = time.perf_counter() - t
    out["rss_before_mb"] = rss_before
    out["n_kept"] = len(merged)
    out["n_duplicates"] = merged.n_duplicates
    print(json.dumps(out))


def run_child(mode: str, input_path: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, "--input", input_path],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.machine()}, {os.cpu_count()}-core {cpu}, no GPU (shared with other work)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["time", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-merge.md"))
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0

    import scipy

    with tempfile.TemporaryDirectory(prefix="bench_merge_") as tmp:
        xy, labels, scores, tile, n_dup, height = make_input(args.points)
        input_path = os.path.join(tmp, "input.npz")
        np.savez(input_path, xy=xy, labels=labels, scores=scores, tile=tile, height=height)
        runs = [run_child("time", input_path) for _ in range(args.repeats)]
        memory = run_child("memory", input_path)

    def med(key):
        return statistics.median(r[key] for r in runs)

    def each(key, fmt="{:.3f}"):
        return ", ".join(fmt.format(r[key]) for r in runs)

    r0 = runs[0]
    lines = [
        f"\n## Merge + dedupe + store, {time.strftime('%Y-%m-%d %H:%M')}\n",
        f"- machine: {machine()}",
        f"- software: Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}",
        f"- command: python bench/merge_store.py --points {args.points} --repeats {args.repeats}",
        f"- input (SYNTHETIC): {r0['n_input']:,} points in {r0['n_batches']} tile batches on a {WIDTH:,} x {height:,} px slide "
        f"at {MPP} µm/px; {n_dup:,} of them ({100 * n_dup / r0['n_input']:.1f} %) are overlap duplicates; dedupe radius {RADIUS:g} px",
        f"- result: {r0['n_kept']:,} kept, {r0['n_duplicates']:,} dropped as duplicates",
        "",
        "| step | median of runs | runs | target |",
        "|---|---|---|---|",
        f"| merge + dedupe | {med('merge_s'):.3f} s | {each('merge_s')} | <= 1 s |",
        f"| write store | {med('store_s'):.3f} s | {each('store_s')} | |",
        f"| viewport query, {QUERY_SIDE} px box (~{r0['query_points_median']:,} points), median of 50 boxes | "
        f"{med('query_ms_median'):.2f} ms | {each('query_ms_median', '{:.2f}')} | <= 100 ms |",
        f"| viewport query, slowest of 50 boxes | {med('query_ms_max'):.2f} ms | {each('query_ms_max', '{:.2f}')} | |",
        f"| density grid 1024 px, all points | {med('density_s'):.3f} s | {each('density_s')} | |",
        "",
        "| memory | value | target |",
        "|---|---|---|",
        f"| merge + dedupe, extra peak RSS over the loaded input (ru_maxrss delta, fresh process) | "
        f"{med('merge_rss_delta_mb'):.0f} MB | <= 500 MB |",
        f"| merge + dedupe, peak traced by tracemalloc (numpy buffers; excludes cKDTree's C++ heap) | "
        f"{memory['merge_traced_peak_mb']:.0f} MB | |",
        f"| write store, peak traced by tracemalloc | {memory['store_traced_peak_mb']:.0f} MB | |",
        f"| whole process peak RSS (interpreter, numpy, scipy, input, merge, store) | {med('rss_peak_mb'):.0f} MB | |",
        f"| store file size | {r0['store_bytes'] / 2**20:.1f} MB ({r0['store_bytes'] / max(r0['n_kept'], 1):.1f} bytes/point) | |",
        "",
        "Queries run on a store just written, i.e. from the page cache; a cold read adds the disk's "
        "latency for the few runs of pages a box touches (one run per 256-px cell row).",
        "",
    ]
    text = "\n".join(lines)
    out = Path(args.out)
    if not out.exists():
        text = "# Detection merge and store benchmarks\n" + text
    with open(out, "a") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
