"""Engine throughput: tissue megapixels per second of the whole embedded pipeline on a large slide.

    .venv/bin/python bench/engine.py [--size 20480] [--tissue-fraction 0.03] [--tag NAME]
        [--configs classic:1,classic:2,fcn:1,fcn:2,fcn:2:1]
    .venv/bin/python bench/engine.py --report-only [TAG]   # redo the markdown from engine-results[-TAG].json

Writes (once, cached in bench/out/, git-ignored) a SYNTHETIC pyramidal TIFF of size x size px at
0.5 µm/px (analysis.synthetic_slide.write_pyramidal_tiff, JPEG tiles) and an UNTRAINED fcn-resnet18
checkpoint (nets.build_detector + save_checkpoint; random weights: inference cost does not depend
on the weights, only the number of detections handed to post-processing does).  Then, for each
configuration detector:workers[:threads] (threads: OMP_NUM_THREADS / MKL_NUM_THREADS for the whole
subprocess, i.e. torch and OpenBLAS threads per process; left out: the libraries' default), it runs
`manage.py analyze_slide SLIDE --workers N --json`
in a fresh process with a fresh file-based SQLite database and MEDIA_ROOT (PDL1_VAR_DIR under
bench/out/), after `manage.py migrate`.

Instrumentation, without touching application code: the subprocess is this file in `--child` mode,
which sets up Django, wraps a few module-level functions (below) with timers and then calls Django's
execute_from_command_line(["manage.py", "analyze_slide", ...]) - the same thing manage.py does.
Every wrapped call appends (pid, name, start, end) to a log file (O_APPEND; forked detect workers
inherit the wrappers), so times from all worker processes are summed.  time.perf_counter is
CLOCK_MONOTONIC, shared by all processes of the machine.

  engine          Command._run: split + every detect batch (in N processes) + merge - the engine wall
  ingest          Command._slide: copy + hash + inspect + thumbnail of the uploaded file (not engine)
  plan            workers.pipeline.plan_job (tissue mask + tile grid)
  task_detect     workers.tasks.detect_batch (DB lease, detect, write the batch file, DB update)
  batch           workers.pipeline.detect_batch (load detector + read + detect each tile)
  read_tile       analysis.tiling.read_tile (read region, JPEG decode, composite, resize)
  detect          ClassicDetector.detect / ModelDetector.detect  = "model inference"
  predict         analysis.postprocess.predict (normalise, forward, softmax, peaks, NMS)
  forward         the network's forward pass alone (wrapped on the model instance)
  merge_job       workers.pipeline.merge_job (load batch files, merge + dedupe, store, counts)

Outside-inference share = 1 - sum(detect) / (workers x engine wall): the share of the worker
processes' wall time not spent inside detector.detect (read, decode, tiling, DB, batch files,
split, merge, store, pool start-up, idle).  Detector start-up (per detect process: first batch start to
first detect call, less tile reads = import torch + load the checkpoint) is reported too, and the
share without it ("warm").  Results: bench/out/engine-results.json and a markdown
section in bench/out/engine-results.md (summarised into bench/RESULTS.md by hand).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MPP = 0.5  # µm/px of the slide = the detectors' working resolution
FCN_ARCH, FCN_BACKBONE = "fcn", "resnet18"


# --------------------------------------------------------------------------- child (instrumented run)

def _logger(path: str):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def log(name: str, t0: float, t1: float) -> None:
        os.write(fd, f"{os.getpid()}\t{name}\t{t0:.6f}\t{t1:.6f}\n".encode())

    return log


def _timed(log, name: str, func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            log(name, t0, time.perf_counter())

    return wrapper


def child(argv: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import django

    django.setup()
    log = _logger(os.environ["BENCH_TIMING_FILE"])

    from analysis import detection_store, detectors, merge, postprocess, tiling
    from workers import pipeline, tasks
    from workers.management.commands import analyze_slide

    cmd = analyze_slide.Command
    cmd._run = _timed(log, "engine", cmd._run)
    cmd._slide = _timed(log, "ingest", cmd._slide)
    pipeline.plan_job = _timed(log, "plan", pipeline.plan_job)
    pipeline.detect_batch = _timed(log, "batch", pipeline.detect_batch)
    pipeline.write_batch_file = _timed(log, "write_batch", pipeline.write_batch_file)
    pipeline.merge_job = _timed(log, "merge_job", pipeline.merge_job)
    tasks.detect_batch = _timed(log, "task_detect", tasks.detect_batch)
    tiling.read_tile = _timed(log, "read_tile", tiling.read_tile)
    merge.merge_detections = _timed(log, "merge_dedupe", merge.merge_detections)
    detection_store.write_store = _timed(log, "write_store", detection_store.write_store)
    detectors.ClassicDetector.detect = _timed(log, "detect", detectors.ClassicDetector.detect)
    detectors.ModelDetector.detect = _timed(log, "detect", detectors.ModelDetector.detect)

    original_predict = postprocess.predict

    def predict(model, *args, **kwargs):
        # Time the bare forward pass too: wrap it on the (cached, per-process) model instance.
        if not getattr(model, "_bench_forward_timed", False):
            model.forward = _timed(log, "forward", model.forward)
            model._bench_forward_timed = True
        return original_predict(model, *args, **kwargs)

    postprocess.predict = _timed(log, "predict", predict)

    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", "analyze_slide", *argv])


# --------------------------------------------------------------------------- parent

def machine() -> dict:
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    info = {"cpu": model or platform.processor(), "arch": platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version()}
    try:
        import numpy
        import torch

        info.update(numpy=numpy.__version__, torch=torch.__version__, torch_threads=torch.get_num_threads(),
                    cuda=torch.cuda.is_available())
    except ImportError:
        pass
    return info


def ensure_slide(size: int, tissue_fraction: float, seed: int) -> dict:
    path = OUT / f"engine-slide-{size}-tf{tissue_fraction}-s{seed}.tiff"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        return json.loads(meta_path.read_text())
    from analysis.synthetic_slide import write_pyramidal_tiff

    print(f"writing SYNTHETIC slide {size}x{size} px, tissue fraction {tissue_fraction} -> {path}", flush=True)
    t0 = time.perf_counter()
    slide = write_pyramidal_tiff(path, size=(size, size), mpp=MPP, seed=seed, tissue_fraction=tissue_fraction,
                                 compression="jpeg")
    meta = {"path": str(path), "size": [size, size], "mpp": MPP, "tissue_fraction": tissue_fraction, "seed": seed,
            "levels": [list(s) for s in slide.levels], "cells": int(len(slide.labels)),
            "bytes": path.stat().st_size, "write_s": round(time.perf_counter() - t0, 1)}
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def ensure_checkpoint() -> Path:
    path = OUT / f"{FCN_ARCH}-{FCN_BACKBONE}-untrained.pt"
    if not path.exists():
        import torch

        from analysis.nets import DetectorConfig, build_detector, save_checkpoint

        torch.manual_seed(0)
        model = build_detector(FCN_ARCH, FCN_BACKBONE).eval()
        save_checkpoint(path, model, DetectorConfig(arch=FCN_ARCH, backbone=FCN_BACKBONE, mpp=MPP),
                        extra={"note": "UNTRAINED (random weights), for speed benchmarks only"})
    return path


def summarise(timing_file: Path, workers: int, tissue_mpx: float) -> dict:
    rows = [line.split("\t") for line in timing_file.read_text().splitlines() if line]
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    engine = None
    pids = set()
    for pid, name, t0, t1 in rows:
        dt = float(t1) - float(t0)
        sums[name] = sums.get(name, 0.0) + dt
        counts[name] = counts.get(name, 0) + 1
        if name == "engine":
            engine = dt
        if name == "batch":
            pids.add(pid)
    inside = sums.get("detect", 0.0)
    # One-off per detect process: from its first batch's start to its first detect call, less the tile reads
    # in between = importing torch + loading the checkpoint (the classic detector: imports only).
    by_pid: dict[str, list] = {}
    for pid, name, t0, t1 in rows:
        by_pid.setdefault(pid, []).append((float(t0), float(t1), name))
    startup = 0.0
    for pid in pids:
        calls = sorted(by_pid[pid])
        first_batch = min(t0 for t0, _, name in calls if name == "batch")
        first_detect = min((t0 for t0, _, name in calls if name == "detect"), default=first_batch)
        reads = sum(t1 - t0 for t0, t1, name in calls if name == "read_tile" and first_batch <= t0 < first_detect)
        startup += first_detect - first_batch - reads
    out = {"engine_s": engine, "detector_startup_s": round(startup, 3),
           "sums_s": {k: round(v, 3) for k, v in sums.items()}, "calls": counts, "detect_processes": len(pids)}
    if engine:
        budget = workers * engine
        out.update(
            tissue_mpx_per_s=tissue_mpx / engine,
            outside_inference_share=1.0 - inside / budget,
            outside_forward_share=1.0 - sums.get("forward", inside) / budget,
            outside_inference_share_warm=1.0 - inside / (budget - startup),
            read_share=sums.get("read_tile", 0.0) / budget,
            merge_store_share=sums.get("merge_job", 0.0) / budget,
        )
    return out


def run_config(slide: dict, detector: str, det_arg: str, workers: int, threads: int | None, timeout: float,
               tag: str = "") -> dict:
    label = f"{detector}-w{workers}" + (f"-t{threads}" if threads else "")
    var = OUT / ("run-" + (f"{tag}-" if tag else "") + label)
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MEDIA_ROOT", "REDIS_URL")}
    env.update(DJANGO_SETTINGS_MODULE="pdl1site.settings", SECRET_KEY="bench", PDL1_VAR_DIR=str(var),
               BENCH_TIMING_FILE=str(var / "timings.tsv"), PYTHONUNBUFFERED="1")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    py = sys.executable
    subprocess.run([py, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    result_path = var / "result.json"
    cmd = [py, str(Path(__file__).resolve()), "--child", slide["path"], "--mpp", str(MPP), "--detector", det_arg,
           "--workers", str(workers), "--json", str(result_path), "--no-progress"]
    load_before = os.getloadavg()
    print(f"[{time.strftime('%H:%M:%S')}] {label}: load {load_before[0]:.2f}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    (var / "stdout.txt").write_text(proc.stdout)
    (var / "stderr.txt").write_text(proc.stderr)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], flush=True)
        return {"label": label, "error": proc.stderr[-2000:], "returncode": proc.returncode}
    result = json.loads(result_path.read_text())
    area = float(result["tissue_area_mm2"])
    tissue_mpx = area / (MPP * 1e-3) ** 2 / 1e6
    out = {"label": label, "detector": detector, "workers": workers, "threads": threads or "default",
           "process_wall_s": wall, "tiles": result["tiles"], "tissue_area_mm2": area, "tissue_mpx": tissue_mpx,
           "job_timings_s": result["timings_s"], "counts": result["counts"],
           "detections": sum(v for k, v in result["counts"].items() if isinstance(v, (int, float))),
           "load_before": load_before, "load_after": os.getloadavg()}
    out.update(summarise(var / "timings.tsv", workers, tissue_mpx))
    print(f"    engine {out.get('engine_s', 0):.1f} s, {out.get('tissue_mpx_per_s', 0):.3f} Mpx/s, "
          f"outside inference {out.get('outside_inference_share', 0):.1%}", flush=True)
    # The copied slide is the biggest file of a run; drop it, keep the logs and the result.
    shutil.rmtree(var / "media" / "slides", ignore_errors=True)
    return out


def markdown(report: dict) -> str:
    m, s = report["machine"], report["slide"]
    lines = [
        f"## Engine throughput, {report['date']}",
        "",
        f"- machine: {m['arch']}, {m['cpu']}, {m['cores']} cores (shared), no GPU (torch cuda available: "
        f"{m.get('cuda')}); load average at start {report['load_start'][0]:.2f} / {report['load_start'][1]:.2f} / "
        f"{report['load_start'][2]:.2f} (1/5/15 min), at end {report['load_end'][0]:.2f}",
        f"- software: Python {m['python']}, numpy {m.get('numpy')}, torch {m.get('torch')} "
        f"({m.get('torch_threads')} intra-op threads by default), fp32 on CPU",
        f"- slide (SYNTHETIC): {s['size'][0]} x {s['size'][1]} px at {s['mpp']} µm/px, pyramidal JPEG TIFF, "
        f"{len(s['levels'])} levels, tissue_fraction {s['tissue_fraction']}, seed {s['seed']}, "
        f"{s['bytes'] / 1e6:.0f} MB (written in {s['write_s']} s, cached)",
        f"- FCN: {FCN_ARCH}-{FCN_BACKBONE} (dilated, output stride 8), UNTRAINED random weights - speed does not "
        "depend on training",
        f"- command: {report['command']}",
        "",
        "| detector | workers | torch threads | tiles | tissue Mpx | engine wall s | tissue Mpx/s | speed-up vs 1 "
        "worker | Σ detect s | Σ forward s | Σ read_tile s | merge+store s | outside inference | outside forward "
        "| detector start-up s | outside inference, warm | process wall s | load before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {}
    for r in report["runs"]:
        if "error" in r:
            lines.append(f"| {r['label']} | failed: {r['error'][-200:]!r} |")
            continue
        # Speed-up against 1 worker with the same torch threads per process, else with the default threads.
        if r["workers"] == 1:
            base[(r["detector"], r["threads"])] = (r["engine_s"], f"1 worker, {r['threads']} threads")
        ref = base.get((r["detector"], r["threads"])) or base.get((r["detector"], "default"))
        speed = f"{ref[0] / r['engine_s']:.2f}x (vs {ref[1]})" if ref and r["workers"] > 1 else "-"
        sums = r["sums_s"]
        has_fwd = "forward" in sums
        fwd = f"{sums['forward']:.1f}" if has_fwd else "-"
        fwd_share = f"{r['outside_forward_share']:.1%}" if has_fwd else "-"
        lines.append(
            f"| {r['detector']} | {r['workers']} | {r['threads']} | {r['tiles']} | {r['tissue_mpx']:.1f} | "
            f"{r['engine_s']:.1f} | {r['tissue_mpx_per_s']:.3f} | {speed} | {sums.get('detect', 0):.1f} | "
            f"{fwd} | {sums.get('read_tile', 0):.1f} | {sums.get('merge_job', 0):.2f} | "
            f"{r['outside_inference_share']:.1%} | {fwd_share} | {r.get('detector_startup_s', float('nan')):.1f} | "
            f"{r.get('outside_inference_share_warm', float('nan')):.1%} | {r['process_wall_s']:.1f} | "
            f"{r['load_before'][0]:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--report-only":  # redo the markdown: --report-only [TAG]
        tag = sys.argv[2] if len(sys.argv) > 2 else ""
        name = "engine-results" + (f"-{tag}" if tag else "")
        report = json.loads((OUT / f"{name}.json").read_text())
        for r in report["runs"]:  # re-derive the summary from the timing logs when they are still there
            timings = OUT / ("run-" + (f"{tag}-" if tag else "") + r["label"]) / "timings.tsv"
            if "error" not in r and timings.exists():
                r.update(summarise(timings, r["workers"], r["tissue_mpx"]))
        (OUT / f"{name}.json").write_text(json.dumps(report, indent=2))
        text = markdown(report)
        (OUT / f"{name}.md").write_text(text)
        print(text)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20480, help="slide side, px (>= 20000 for the issue's target)")
    parser.add_argument("--tissue-fraction", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", default="classic:1,classic:2,fcn:1,fcn:2,fcn:2:1",
                        help="detector:workers[:torch threads per process], comma-separated")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per configuration")
    parser.add_argument("--tag", default="", help="results go to engine-results[-TAG].json/.md")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    OUT.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    slide = ensure_slide(args.size, args.tissue_fraction, args.seed)
    checkpoint = ensure_checkpoint()
    runs = []
    for spec in args.configs.split(","):
        parts = spec.split(":")
        detector, workers = parts[0], int(parts[1])
        threads = int(parts[2]) if len(parts) > 2 else None
        det_arg = "classic" if detector == "classic" else str(checkpoint)
        runs.append(run_config(slide, detector, det_arg, workers, threads, args.timeout, args.tag))
    report = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(), "slide": slide,
              "command": "python bench/engine.py " + " ".join(sys.argv[1:]), "load_start": load_start,
              "load_end": os.getloadavg(), "runs": runs}
    name = "engine-results" + (f"-{args.tag}" if args.tag else "")
    (OUT / f"{name}.json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    (OUT / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
