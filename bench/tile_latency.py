"""Viewer latency bench: DeepZoom tiles under 50 concurrent clients, and the overlay query.

    .venv/bin/python bench/tile_latency.py [--seconds 10] [--clients 50] [--out bench/RESULTS-viewer.md]

Sets up a throw-away embedded platform in a temp folder (SQLite file DB, media folder), ingests
CMU-1-Small-Region.svs (shared data) and a fake 100k x 80k slide whose done job holds 1,000,000
synthetic detections (analysis.detection_store.write_store), logs a pathologist in (a session
cookie), starts daphne on a free 127.0.0.1 port and fires asyncio HTTP/1.1 keep-alive clients
(stdlib only: aiohttp and wrk are not installed here) at random tiles of every pyramid level.

Phases: the rendered-tile cache off (every request reads, decodes and JPEG-encodes a tile) and
on (the viewer's default 32 MB LRU of encoded tiles), 50 clients each, plus 1 client for the
unloaded latency. Then the overlay: /api/viewer/jobs/<id>/points/ for a ~10k-point viewport of
the 1M-point store, timed in process (overlay.viewport) and end to end over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLIDE = ROOT.parent / "shared" / "data" / "slides" / "CMU-1-Small-Region.svs"
N_POINTS = 1_000_000
FAKE_W, FAKE_H = 100_000, 80_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(workdir: Path) -> dict:
    """Migrate a fresh DB, ingest the slide, write the 1M store; returns ids and a session cookie."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_viewer_settings"
    import django

    django.setup()
    import numpy as np
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    from analysis.choices import JobStatus
    from analysis.detection_store import write_store
    from analysis.models import AnalysisJob
    from cases.choices import Role
    from cases.models import Slide
    from cases.services import IngestSource, do_ingest_slide
    from tests.factories import CaseFactory, DepartmentFactory, make_user

    dept = DepartmentFactory(code="bench")
    user = make_user(Role.PATHOLOGIST, [dept], username="bench-pathologist")
    case = CaseFactory(patient__department=dept)
    slide = do_ingest_slide([IngestSource(name=SLIDE.name, path=SLIDE)], case=case).slide
    fake = Slide.objects.create(case=case, file="slides/fake.tiff", original_name="fake.tiff", sha256="f" * 64,
                                size_bytes=1, format="generic-tiff", width=FAKE_W, height=FAKE_H, level_count=1,
                                level_dimensions=[[FAKE_W, FAKE_H]], level_downsamples=[1.0], mpp_x=0.25, mpp_y=0.25)
    rng = np.random.default_rng(0)
    xy = rng.uniform([0, 0], [FAKE_W, FAKE_H], (N_POINTS, 2)).astype(np.float32)
    labels = np.where(rng.random(N_POINTS) < 0.4, 1, 2).astype(np.int8)
    relative = "jobs/bench/detections.store"
    write_store(Path(settings.MEDIA_ROOT) / relative, xy, labels, rng.random(N_POINTS), width=FAKE_W, height=FAKE_H,
                mpp=0.25)
    job = AnalysisJob.objects.create(slide=fake, detector="classic", status=JobStatus.DONE, result_file=relative,
                                     summary={"detections": N_POINTS})
    client = Client()
    client.force_login(user)
    from viewer import tiles

    opened = tiles.open_generator(str(slide.path))
    urls = [f"/viewer/slides/{slide.pk}_files/{level}/{col}_{row}.jpeg"
            for level in range(opened.generator.level_count)
            for col in range(opened.generator.level_tiles[level][0])
            for row in range(opened.generator.level_tiles[level][1])]
    return {"slide": slide.pk, "job": job.pk, "cookie": client.cookies["sessionid"].value, "tile_urls": urls}


def write_settings(workdir: Path, tile_cache: bool, fast_path: bool = False) -> None:
    (workdir / "bench_viewer_settings.py").write_text(textwrap.dedent(f"""
        from pdl1site.settings import *  # noqa
        PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        LOGGING = {{"version": 1, "disable_existing_loggers": True}}
        PDL1_VIEWER_TILE_CACHE_BYTES = {32 * 1024 * 1024 if tile_cache else 0}
        PDL1_VIEWER_TILE_GRANT_SECONDS = {10 if fast_path else 0}
    """))


WRK_SCRIPT = r"""
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args)
  urls = {}
  for line in io.lines(args[1]) do urls[#urls + 1] = line end
  cookie = args[2]
  bad = 0
  math.randomseed(tonumber(args[3]) + math.floor(os.clock() * 1000000))
end
request = function()
  return wrk.format("GET", urls[math.random(#urls)], {["Cookie"] = "sessionid=" .. cookie})
end
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local not_ok = 0
  for _, t in ipairs(threads) do not_ok = not_ok + t:get("bad") end
  io.write(string.format("WRK %d %d %d %.3f %.3f %.3f %.3f %d\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + not_ok, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000, not_ok))
end
"""


def wrk_load(workdir: Path, port, cookie, urls, clients, seconds) -> dict:
    """wrk (C, HTTP/1.1 keep-alive, 1 thread: the other core is the server's): `clients` connections, each asking for random tiles
    back to back; its own latency histogram gives the percentiles."""
    (workdir / "urls.txt").write_text("\n".join(urls) + "\n")
    (workdir / "tiles.lua").write_text(WRK_SCRIPT)
    out = subprocess.run(["wrk", "-t", "1", "-c", str(clients), "-d", f"{seconds:g}s", "--timeout", "10s",
                          "-s", str(workdir / "tiles.lua"), f"http://127.0.0.1:{port}", "--",
                          str(workdir / "urls.txt"), cookie, "1"],
                         capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout[-1000:]} {out.stderr[-1000:]}")
    n, duration_us, errors, p50, p95, p99, top, _ = line.split()[1:]
    return {"requests": int(n), "rps": int(n) / (int(duration_us) / 1e6), "p50": float(p50), "p95": float(p95),
            "p99": float(p99), "max": float(top), "errors": int(errors)}


def start_daphne(workdir: Path, env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                             "--verbosity", "0", "pdl1site.asgi:application"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(workdir / "daphne.log", "ab"))
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
            return proc
        except Exception:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"daphne did not start; see {workdir / 'daphne.log'}")


async def _client(port, cookie, urls, deadline, latencies, errors, rng):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            url = rng.choice(urls)
            request = (f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sessionid={cookie}\r\n"
                       "Connection: keep-alive\r\n\r\n").encode()
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        errors.append(type(exc).__name__)
    finally:
        writer.close()


async def load(port, cookie, urls, clients, seconds):
    latencies, errors = [], []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*[_client(port, cookie, urls, deadline, latencies, errors, random.Random(i))
                           for i in range(clients)])
    elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def summarise(latencies, errors, elapsed) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100) if len(ms) > 1 else [ms[0]] * 99
    return {"requests": len(ms), "rps": len(ms) / elapsed, "p50": q[49], "p95": q[94], "p99": q[98],
            "max": ms[-1], "errors": len(errors)}


def http_get_ms(port, cookie, path, reps) -> tuple[list[float], bytes]:
    times, body = [], b""
    for _ in range(reps):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Cookie": f"sessionid={cookie}"})
        started = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            body = response.read()
        times.append((time.perf_counter() - started) * 1000)
    return times, body


def http_each(port, cookie, paths) -> None:
    """One request per path, in order (fills the tile cache: the slide has been viewed)."""
    for path in paths:
        http_get_ms(port, cookie, path, 1)


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:  # still busy with the queued requests of the last phase
        proc.kill()
        proc.wait(10)


def overlay_in_process(job_id) -> dict:
    from analysis.models import AnalysisJob
    from viewer import human_layer, overlay, stores

    job = AnalysisJob.objects.get(pk=job_id)
    store = stores.job_store(job)
    state = human_layer.correction_state(job)
    side = 8944  # ~10k of 1M uniform points on 100k x 80k
    rng = random.Random(1)
    times, returned = [], []
    for _ in range(30):
        x0, y0 = rng.uniform(0, FAKE_W - side), rng.uniform(0, FAKE_H - side)
        started = time.perf_counter()
        body = overlay.viewport(store, state, x0, y0, x0 + side, y0 + side, 20000, {1, 2})
        times.append((time.perf_counter() - started) * 1000)
        returned.append(body["returned"])
    return {"side": side, "times": times, "returned": statistics.mean(returned)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-viewer.md"))
    parser.add_argument("--overlay-requests", type=int, default=100)
    parser.add_argument("--only-default", action="store_true", help="only the default (fast path, warm) tile phase")
    parser.add_argument("--asyncio-client", action="store_true", help="the stdlib load client even when wrk is there")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="viewer-bench-"))
    env = {**os.environ, "SECRET_KEY": "bench-only", "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
           "MEDIA_ROOT": str(workdir / "media"), "PDL1_VAR_DIR": str(workdir),
           "PYTHONPATH": f"{workdir}{os.pathsep}{ROOT}", "DJANGO_SETTINGS_MODULE": "bench_viewer_settings"}
    env.pop("REDIS_URL", None)
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    sys.path[:0] = [str(workdir), str(ROOT)]
    write_settings(workdir, tile_cache=False)
    info = setup(workdir)
    print(f"set up in {workdir}: {len(info['tile_urls'])} tile addresses, job {info['job']}", flush=True)

    results, procs = {}, []
    try:
        use_wrk = shutil.which("wrk") is not None and not args.asyncio_client
        n = args.clients
        # (label, tile cache, fast path, clients, warm every tile first). Cold: the run starts with the
        # tiles of a short 4-client warm-up cached and renders the rest as they come; warm: every tile
        # address was asked for once (the slide has been viewed), the steady state of an open slide.
        phases = (("through Django, tile cache off, 1 client", False, False, 1, False),
                  (f"through Django, tile cache off, {n} clients", False, False, n, False),
                  (f"through Django, tile cache on (cold), {n} clients", True, False, n, False),
                  (f"through Django, tile cache on (warm), {n} clients", True, False, n, True),
                  (f"fast path + tile cache (default, cold), {n} clients", True, True, n, False),
                  (f"fast path + tile cache (default, warm), {n} clients", True, True, n, True))
        if args.only_default:
            phases = phases[-1:]
        for label, cache, fast, clients, warm_all in phases:
            write_settings(workdir, tile_cache=cache, fast_path=fast)
            port = free_port()
            proc = start_daphne(workdir, env, port)
            procs.append(proc)
            # warm: open the slide (and fill the tile cache when on) before timing
            asyncio.run(load(port, info["cookie"], info["tile_urls"], 4, 1.5))
            if warm_all:
                http_each(port, info["cookie"], info["tile_urls"])
            if use_wrk and clients > 1:
                results[label] = wrk_load(workdir, port, info["cookie"], info["tile_urls"], clients, args.seconds)
            else:
                results[label] = summarise(*asyncio.run(load(port, info["cookie"], info["tile_urls"], clients,
                                                             args.seconds)))
            results[label]["tool"] = "wrk" if use_wrk and clients > 1 else "asyncio"
            print(label, {k: (round(v, 1) if isinstance(v, float) else v) for k, v in results[label].items()},
                  flush=True)
            stop(proc)
        # The overlay on a fresh server process (no backlog of queued tile requests), one request at a time.
        write_settings(workdir, tile_cache=True, fast_path=True)
        port = free_port()
        proc = start_daphne(workdir, env, port)
        procs.append(proc)
        rng = random.Random(2)
        side = 8944
        # the first viewport of a job in a server process opens its store (once per process)
        first_overlay, _ = http_get_ms(port, info["cookie"], f"/api/viewer/jobs/{info['job']}/points/?x0=0"
                                       f"&y0=0&x1={side}&y1={side}&max=20000", 1)
        http = []
        for _ in range(args.overlay_requests):
            x0, y0 = rng.uniform(0, FAKE_W - side), rng.uniform(0, FAKE_H - side)
            t, body = http_get_ms(port, info["cookie"], f"/api/viewer/jobs/{info['job']}/points/?x0={x0:.0f}"
                                  f"&y0={y0:.0f}&x1={x0 + side:.0f}&y1={y0 + side:.0f}&max=20000", 1)
            http += t
        density_first, _ = http_get_ms(port, info["cookie"], f"/api/viewer/jobs/{info['job']}/density/?grid_px=2048", 1)
        density_again, _ = http_get_ms(port, info["cookie"], f"/api/viewer/jobs/{info['job']}/density/?grid_px=2048", 5)
        stop(proc)
        in_process = overlay_in_process(info["job"])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    report(args, results, in_process, http, first_overlay, density_first, density_again, info)
    shutil.rmtree(workdir, ignore_errors=True)


def _load_average() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def report(args, results, in_process, http, first_overlay, density_first, density_again, info):
    def pct(values, p):
        return statistics.quantiles(values, n=100)[p - 1]

    tools = sorted({r["tool"] for r in results.values()})
    lines = [
        "# Viewer latency (bench/tile_latency.py)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')} UTC on {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"no GPU; Python {platform.python_version()}; load average after the run {_load_average()}. "
        "Server: one daphne process, embedded mode (SQLite file DB), slide CMU-1-Small-Region.svs (2220x2967, "
        f"JPEG Aperio), {len(info['tile_urls'])} tile addresses over all DeepZoom levels, picked at random by "
        f"every request. Load tool: {' and '.join(tools)} (wrk: C, 1 thread; asyncio: the stdlib client in "
        "this file), HTTP/1.1 keep-alive on loopback, on the same 2 cores as the server; each client sends its "
        f"next request as soon as the last one is answered (no think time), {args.seconds:g} s per phase "
        "after a warm-up. \"Through Django\": every tile passes the whole Django stack (session, role, "
        "visible slides, ETag). \"Fast path\": viewer/fastpath.py answers repeat tiles of a session that the "
        "tile view granted the slide within the last 10 s, from the rendered-tile cache; the rest still goes "
        "through Django. The server process runs with the default garbage-collector tuning "
        "(SERVER_GC_THRESHOLD, pdl1site/asgi.py: gc.freeze() after start-up, first threshold 50,000); with "
        "Python's defaults the warm fast path's p95 was 96-113 ms, collection pauses being most of the tail.",
        "",
        "## Tiles",
        "",
        "| phase | load tool | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        lines.append(f"| {label} | {r['tool']} | {r['requests']} | {r['rps']:.0f} | {r['p50']:.1f} | "
                     f"{r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['errors']} |")
    default = results[f"fast path + tile cache (default, warm), {args.clients} clients"]
    verdict = "met" if default["p95"] <= 30 and default["errors"] == 0 else "missed"
    lines += [
        "",
        f"Target p95 <= 30 ms for an open slide with {args.clients} concurrent clients and no errors: "
        f"**{verdict}** with the default configuration (p95 {default['p95']:.1f} ms, {default['errors']} errors). "
        "Without the fast path the latency is queueing in front of one Django process: by Little's law "
        "latency = clients / throughput, and each tile through Django costs several ms of CPU.",
        "",
        "## Overlay (1,000,000-point detection store, 100k x 80k px slide)",
        "",
        f"- In process, overlay.viewport for a {in_process['side']} px square (~{in_process['returned']:.0f} points, "
        f"corrections applied): p50 {statistics.median(in_process['times']):.1f} ms, "
        f"max {max(in_process['times']):.1f} ms over {len(in_process['times'])} random viewports.",
        f"- Over HTTP (daphne, session auth, JSON of ~10k points), one request at a time: "
        f"p50 {statistics.median(http):.1f} ms, p95 {pct(http, 95):.1f} ms, max {max(http):.1f} ms over {len(http)} "
        f"random viewports (target <= 100 ms: **{'met' if pct(http, 95) <= 100 else 'missed'}** at p95). The "
        f"first viewport of a job in a server process also opens its detection store: {first_overlay[0]:.0f} ms "
        "(once per job and process, not counted above).",
        f"- Density grid (grid_px 2048, 49x40 cells): first call {density_first[0]:.0f} ms (a pass over the 1M "
        f"points), then {statistics.median(density_again):.1f} ms (cached per store and grid).",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
