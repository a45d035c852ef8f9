"""Viewer frame times in headless Chromium while panning over a slide with 1,000,000 detections.

    .venv/bin/python bench/viewer_frames.py                 # ~2 min on 2 CPU cores
    .venv/bin/python bench/viewer_frames.py --points 1000000 --size 32768 --frames 300

Everything is SYNTHETIC: a big tiled pyramidal JPEG TIFF (tiles repeat a few generated textures;
cached in bench/out/), 1,000,000 random detections written with analysis.detection_store.write_store,
and a done AnalysisJob pointing at them. The site runs as in tests/viewer/browser.py (fresh SQLite
database, daphne subprocess, pdl1site.settings). The page is the real viewer; the script pans it
programmatically (viewport.panBy once per animation frame) and records requestAnimationFrame
intervals in the page, in three scenes:

    points-zoomed   zoomed in so that ~5-10k detections are in view: points drawn every frame
    points-dense    zoomed out to the most points the viewer still draws as points (~12k in view)
    heatmap-home    the whole slide: the density heatmap replaces the points

Target: p95 frame interval <= 50 ms. Writes bench/out/viewer-frames.json and prints a markdown
section for bench/RESULTS-viewer-frames.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO))

MEASURE = """async ([frames, dx, dy]) => {
  const v = window.pdl1Viewer, vp = v.viewer.viewport;
  const times = [];
  const q0 = v.queries;
  v.drawStats = {count: 0, totalMs: 0, maxMs: 0};
  let maxDrawn = 0, modes = {};
  await new Promise(resolve => {
    let i = 0, dir = 1;
    function step(t) {
      times.push(t);
      const d = v.drawnCounts;
      maxDrawn = Math.max(maxDrawn, d.positive + d.negative);
      modes[v.mode] = (modes[v.mode] || 0) + 1;
      if (i % 150 === 149) dir = -dir;  // back and forth: stays over the slide
      vp.panBy(vp.deltaPointsFromPixels(new OpenSeadragon.Point(dx * dir, dy * dir)), true);
      if (++i > frames) { resolve(); return; }
      requestAnimationFrame(step);
    }
    requestAnimationFrame(step);
  });
  const intervals = [];
  for (let k = 1; k < times.length; k++) intervals.push(times[k] - times[k - 1]);
  const ds = v.drawStats;
  return {intervals, queries: v.queries - q0, maxDrawn, modes, pointsLoaded: v.pointsLoaded,
          overlayDraws: ds.count, overlayMeanMs: ds.count ? +(ds.totalMs / ds.count).toFixed(2) : 0,
          overlayMaxMs: +ds.maxMs.toFixed(1)};
}"""


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def write_big_slide(path: Path, size: int, mpp: float = 0.5, tile: int = 512) -> Path:
    """A SYNTHETIC pyramidal JPEG TIFF: tiles repeat 8 generated H-DAB-like textures (fast to write)."""
    import numpy as np
    import tifffile

    if path.exists():
        return path
    rng = np.random.default_rng(3)
    variants = []
    for k in range(8):
        base = np.array([232, 222, 235], np.float32) - rng.uniform(0, 25, 3)
        noise = rng.normal(0, 10, (tile // 8, tile // 8, 1)).repeat(8, 0).repeat(8, 1)
        t = base + noise + rng.normal(0, 4, (tile, tile, 3))
        yy, xx = np.mgrid[0:tile, 0:tile]
        for _ in range(40):  # nuclei
            cx, cy, r = rng.uniform(0, tile), rng.uniform(0, tile), rng.uniform(6, 11)
            blob = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
            t[blob] = [120, 110, 170] if rng.random() < 0.6 else [150, 100, 60]
        variants.append(np.clip(t, 0, 255).astype(np.uint8))
    shapes = [(size, size)]
    while max(shapes[-1]) > 1024:
        shapes.append(((shapes[-1][0] + 1) // 2, (shapes[-1][1] + 1) // 2))
    res = 1e4 / mpp
    tmp = path.with_suffix(".tmp")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for k, (h, w) in enumerate(shapes):
            nty, ntx = -(-h // tile), -(-w // tile)
            tiles = (variants[(tx * 7 + ty * 13 + k) % len(variants)] for ty in range(nty) for tx in range(ntx))
            tif.write(tiles, shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb",
                      compression="jpeg", compressionargs={"level": 85}, resolution=(res / 2**k, res / 2**k),
                      resolutionunit="CENTIMETER", subfiletype=0 if k == 0 else 1, metadata=None,
                      description="SYNTHETIC benchmark slide (bench/viewer_frames.py); not tissue" if k == 0 else None)
    tmp.rename(path)
    return path


def child_setup() -> None:
    """Runs in the site's environment (Django set up): users, the slide, the 1M-point job."""
    import numpy as np
    from django.conf import settings

    from analysis.choices import JobStatus
    from analysis.detection_store import write_store
    from analysis.models import AnalysisJob
    from cases.choices import Role
    from cases.services import IngestSource, do_ingest_slide
    from tests.factories import CaseFactory, DepartmentFactory, make_user

    slide_path, n = Path(sys.argv[1]), int(sys.argv[2])
    dept = DepartmentFactory(code="dept-a")
    make_user(Role.PATHOLOGIST, [dept], username="pathologist")
    case = CaseFactory(patient__department=dept, accession="S26-BENCH")
    slide = do_ingest_slide([IngestSource(name=slide_path.name, path=slide_path)], case=case).slide
    rng = np.random.default_rng(11)
    xy = rng.uniform([0, 0], [slide.width, slide.height], size=(n, 2)).astype(np.float32)
    labels = np.where(rng.random(n) < 0.35, 1, 2).astype(np.int8)
    scores = rng.uniform(0.5, 1, n).astype(np.float32)
    relative = f"jobs/bench-{slide.pk}/detections.store"
    write_store(Path(settings.MEDIA_ROOT) / relative, xy, labels, scores, width=slide.width, height=slide.height,
                mpp=slide.mpp_x)
    pos, neg = int((labels == 1).sum()), int((labels == 2).sum())
    job = AnalysisJob.objects.create(slide=slide, detector="classic", status=JobStatus.DONE, result_file=relative,
                                     summary={"counts": {"positive": pos, "negative": neg, "other": 0},
                                              "tps": 100 * pos / (pos + neg), "detections": n})
    print("SETUP " + json.dumps({"slide": slide.pk, "job": job.pk, "width": slide.width}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=32768, help="slide side, px (0.5 µm/px)")
    parser.add_argument("--frames", type=int, default=300, help="animation frames per scene")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from playwright.sync_api import sync_playwright

    from tests.viewer.browser import LiveSite, launch_browser, login

    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    slide_file = write_big_slide(OUT / f"viewer-frames-slide-{args.size}.tiff", args.size)
    print(f"slide ready ({time.perf_counter() - started:.0f} s): {slide_file}", flush=True)

    class BenchSite(LiveSite):
        def _setup(self):
            code = "import django; django.setup(); from bench.viewer_frames import child_setup; child_setup()"
            out = subprocess.run([sys.executable, "-c", code, str(slide_file), str(args.points)], cwd=REPO,
                                 env=self.env, capture_output=True, text=True, timeout=900)
            for line in out.stdout.splitlines():
                if line.startswith("SETUP "):
                    return json.loads(line[6:])
            raise SystemExit(f"setup failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")

    site = BenchSite(Path(tempfile.mkdtemp(prefix="viewer-frames-", dir=OUT)))
    results = {}
    try:
        data = site.start()
        print(f"site ready ({time.perf_counter() - started:.0f} s)", flush=True)
        with sync_playwright() as pw:
            browser = launch_browser(pw)
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            page.set_default_timeout(60_000)
            login(page, site.url, "pathologist")
            page.goto(f"{site.url}/slides/{data['slide']}/viewer/")
            page.wait_for_function("window.pdl1Viewer && window.pdl1Viewer.ready")
            browser_version = browser.version
            drawer = page.evaluate("window.pdl1Viewer.drawer")
            # Zoom (screen px per level-0 px) for each scene; 1M points on 32768² px: ~1 per 1,070 px².
            density = args.points / (args.size * args.size)
            view_px = page.evaluate("[window.pdl1Viewer.viewer.canvas.clientWidth,"
                                    " window.pdl1Viewer.viewer.canvas.clientHeight]")
            area = view_px[0] * view_px[1]
            zoomed = (area * density / 6000) ** 0.5  # ~6k points in view
            scenes = {  # name: (image zoom or None for home, overlay layers on)
                "tiles-only-zoomed": (zoomed, False),  # baseline: same pan, overlay layers off
                "points-zoomed": (zoomed, True),
                "points-dense": ((area * density / 11000) ** 0.5, True),  # ~11k: just below the heatmap switch
                "heatmap-home": (None, True),
            }
            for name, (zoom, overlay) in scenes.items():
                page.evaluate("""([zoom, overlay]) => {
                    const vp = window.pdl1Viewer.viewer.viewport;
                    for (const id of ['layer-positive', 'layer-negative', 'layer-heatmap']) {
                      const box = document.getElementById(id);
                      if (box.checked !== overlay) box.click();
                    }
                    vp.goHome(true);
                    if (zoom) vp.zoomTo(vp.imageToViewportZoom(zoom), vp.getCenter(), true);
                }""", [zoom, overlay])
                mode = "points" if zoom else "heatmap"
                page.wait_for_function("([m, on]) => { const v = window.pdl1Viewer; return v.mode === m && (on"
                                       " ? (m !== 'points' || v.drawnCounts.positive > 0)"
                                       " : v.drawnCounts.positive + v.drawnCounts.negative === 0); }",
                                       arg=[mode, overlay])
                page.wait_for_timeout(1500)  # tiles and points of the start position
                run = page.evaluate(MEASURE, [args.frames, 9, 4])
                iv = run.pop("intervals")
                results[name] = {
                    "image_zoom": zoom, "frames": len(iv),
                    "p50_ms": round(percentile(iv, 0.5), 1), "p95_ms": round(percentile(iv, 0.95), 1),
                    "p99_ms": round(percentile(iv, 0.99), 1), "max_ms": round(max(iv), 1),
                    "mean_ms": round(statistics.fmean(iv), 1), **run,
                }
                print(name, results[name], flush=True)
                page.screenshot(path=str(OUT / f"viewer-frames-{name}.png"))
            browser.close()
    finally:
        site.stop()
        shutil.rmtree(site.tmp, ignore_errors=True)  # its database and the ingested copy of the slide

    machine = {
        "cpu": _cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
        "chromium": browser_version, "osd_drawer": drawer, "load_avg": os.getloadavg(), "python": platform.python_version(),
    }
    report = {"machine": machine, "points": args.points, "slide_px": args.size, "frames": args.frames,
              "results": results, "total_s": round(time.perf_counter() - started, 1)}
    (OUT / "viewer-frames.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores (shared), {m['platform']}; headless Chromium {m['chromium']} "
        f"(software rendering, --disable-gpu; OpenSeadragon drawer: {m['osd_drawer']}); load average {', '.join(f'{x:.2f}' for x in m['load_avg'])}.",
        f"SYNTHETIC slide {report['slide_px']} x {report['slide_px']} px at 0.5 µm/px with "
        f"{report['points']:,} random detections; {report['frames']} frames per scene, viewer 1280 x 800 page.",
        "",
        "| scene | image zoom | p50 ms | p95 ms | p99 ms | max ms | max points drawn | point queries | target p95 <= 50 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["results"].items():
        zoom = "home" if r["image_zoom"] is None else f"{r['image_zoom']:.3f}"
        ok = "met" if r["p95_ms"] <= 50 else "MISSED"
        lines.append(f"| {name} | {zoom} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | "
                     f"{r['maxDrawn']:,} | {r['queries']} | {ok} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
