"""Soak with injected faults (issue 19 items 1-3 and 5): the whole platform under a working day's
load while its parts fail, on loopback only, bounded in requests and time.

    .venv/bin/python bench/soak.py [--duration 600] [--viewers 50] [--annotators 5] [--pathologists 2]
        [--jobs 2] [--training-steps 30] [--seed 19] [--out result.json] [--write-md]

Starts its own PostgreSQL cluster (initdb in a temporary folder, a private port) and redis-server
(a private port), MEDIA_ROOT on a small tmpfs of its own (bench/soak_services.py); migrates and
seeds (bench/soak_seed.py: load_demo's real PD-L1 slide and its fault-free reference analysis,
users, annotation fields, SYNTHETIC slides to upload); runs two daphne processes (two ports, clients
fail over between them as behind a balancer), two `qcluster` for analysis and one training cluster
(Q_CLUSTER_NAME=training); drives the load (bench/soak_load.py); injects one fault of each kind at
a seeded random moment (bench/soak_faults.py); then checks what must hold (bench/soak_verify.py)
and writes the numbers: JSON (--out) and, with --write-md, bench/RESULTS-soak.md.

Exit status 0 when every invariant held, 1 otherwise. The CI version is
tests/bench/test_soak_short.py (about 60 s of load, one fault of each kind).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from soak_faults import Fault, Injector, schedule  # noqa: E402
from soak_load import Client, Recorder, annotator, job_stream, pathologist, prober, reporter, trainer, uploader, \
    viewer  # noqa: E402
from soak_services import MediaDisk, PrivatePostgres, PrivateRedis, free_port, tree_rss, wait_for  # noqa: E402

PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable


class Proc:
    """A platform process in a session of its own (SIGKILL takes its whole tree), restartable."""

    def __init__(self, name: str, cmd: list[str], env: dict, log: Path, ready, src: Path):
        self.name, self.cmd, self.env, self.log, self._ready, self.src = name, cmd, env, log, ready, src
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.rss_start: dict | None = None

    def start(self) -> None:
        out = open(self.log, "ab")
        out.write(f"\n--- start {self.starts} at {time.time():.1f}\n".encode())
        self._log_offset = self.log.stat().st_size
        self.proc = subprocess.Popen(self.cmd, cwd=self.src, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.starts += 1

    def ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        return self._ready(self)

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()


def listening(port: int):
    def check(_proc) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        return False
    return check


def cluster_ready(proc: Proc) -> bool:
    text = proc.log.read_bytes()[proc._log_offset:].decode(errors="replace")
    return bool(re.search(r"ready for work at \d+", text))


class Site:
    """Everything the soak runs: services, processes, seed data, the recorder."""

    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.tmp = Path(tempfile.mkdtemp(prefix="pdl1-soak-"))
        os.chmod(self.tmp, 0o755)  # the postgres user walks into its data folder below
        self.pg = PrivatePostgres(self.tmp / "pg", free_port())
        self.redis = PrivateRedis(self.tmp / "redis", free_port())
        self.media = MediaDisk(self.tmp / "media", args.media_mb)
        self.ports = [free_port(), free_port()]
        self.procs: dict[str, Proc] = {}
        self.rec = Recorder()
        self.stop = threading.Event()
        self._sql = None
        self.seed: dict = {}
        self.spare_uploads: list[str] = []
        self.fault_token = None
        self.uploader_client: Client | None = None
        self.src = REPO
        if args.source == "head":  # a snapshot of the last commit: others' edits in progress cannot break the run
            self.src = self.tmp / "src"
            self.src.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(self.src)], input=archive.stdout, check=True)
            self.commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                         text=True).stdout.strip()
        else:
            self.commit = "working tree"

    # --- set-up ---

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
        env.update({
            "DJANGO_SETTINGS_MODULE": "pdl1site.settings", "SECRET_KEY": "soak-only-secret-key",
            "DATABASE_URL": self.pg.url, "REDIS_URL": self.redis.url, "MEDIA_ROOT": str(self.media.path),
            "PDL1_VAR_DIR": str(self.tmp / "var"), "Q_WORKERS": "1", "Q_TIMEOUT": "1800", "Q_RETRY": "3600",
            "BATCH_DEADLINE_SECONDS": str(self.args.batch_deadline), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO",
            "SESSION_COOKIE_AGE": "28800",
        })
        return env

    def setup(self) -> None:
        self.pg.init()
        self.redis.start()
        self.media_kind = self.media.mount()
        (self.media.path / "tmp").mkdir(exist_ok=True)
        env = self.env()
        log = self.tmp / "setup.log"
        with open(log, "ab") as out:
            subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=self.src, env=env, stdout=out,
                           stderr=subprocess.STDOUT, check=True, timeout=600)
        n_uploads = self.args.uploads + 2
        seeded = subprocess.run([PYTHON, str(BENCH / "soak_seed.py"), str(self.tmp), str(n_uploads)], cwd=self.src,
                                env=env, capture_output=True, text=True, timeout=900)
        line = next((ln for ln in seeded.stdout.splitlines() if ln.startswith("SEED ")), None)
        if line is None:
            raise RuntimeError(f"seed failed:\n{seeded.stdout[-2000:]}\n{seeded.stderr[-4000:]}")
        self.seed = json.loads(line[5:])
        self.spare_uploads = self.seed["uploads"][:2]
        self.seed_file = self.tmp / "seed.json"
        self.seed_file.write_text(json.dumps(self.seed))

    def start_processes(self) -> None:
        env = self.env()
        for i, port in enumerate(self.ports, 1):
            self.procs[f"daphne-{i}"] = Proc(f"daphne-{i}", [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                                              "pdl1site.asgi:application"], env,
                                             self.tmp / f"daphne-{i}.log", listening(port), self.src)
        for name in ("analysis-1", "analysis-2"):
            self.procs[name] = Proc(name, [PYTHON, "manage.py", "qcluster"], env, self.tmp / f"{name}.log",
                                    cluster_ready, self.src)
        # Training has a queue of its own where the settings define one (Q_CLUSTER ALT_CLUSTERS "training");
        # in older trees the third cluster serves the one shared queue.
        own_queue = "ALT_CLUSTERS" in (self.src / "pdl1site" / "settings.py").read_text()
        self.training_queue = "own queue (Q_CLUSTER_NAME=training)" if own_queue else "shared with analysis"
        self.procs["training"] = Proc("training", [PYTHON, "manage.py", "qcluster"],
                                      {**env, "Q_CLUSTER_NAME": "training"} if own_queue else env,
                                      self.tmp / "training.log", cluster_ready, self.src)
        for p in self.procs.values():
            p.start()
        for p in self.procs.values():
            wait_for(p.ready, 180, 0.2, f"{p.name} to be ready")

    def daphne_for(self, port: int) -> str:
        return f"daphne-{self.ports.index(port) + 1}"

    def upload_port(self) -> int:
        return self.uploader_client.port if self.uploader_client else self.ports[0]

    def sql(self, query: str) -> list[tuple]:
        import psycopg

        for attempt in range(2):
            try:
                if self._sql is None or self._sql.closed:
                    self._sql = psycopg.connect(self.pg.url, autocommit=True, connect_timeout=3)
                return list(self._sql.execute(query).fetchall())
            except psycopg.OperationalError:
                with contextlib.suppress(Exception):
                    self._sql.close()
                self._sql = None
                if attempt:
                    raise
        return []

    def memory(self) -> dict:
        out = {name: tree_rss(p.proc.pid) for name, p in self.procs.items() if p.proc and p.proc.poll() is None}
        pid = self.pg.postmaster_pid()
        if pid:
            out["postgres"] = tree_rss(pid)
        if self.redis.proc:
            out["redis"] = tree_rss(self.redis.proc.pid)
        return out

    def teardown(self) -> None:
        # Never leave a private service or a mount behind: a second Ctrl-C cannot interrupt this.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.stop.set()
        for p in self.procs.values():
            p.stop()
        self.redis.stop()
        with contextlib.suppress(Exception):
            if self._sql is not None:
                self._sql.close()
        self.pg.stop("fast")
        self.media.unmount()
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- the run --------------------------------------------------------------------------------


def run(args) -> dict:
    site = Site(args)
    started = time.time()
    try:
        site.setup()
        t_setup = time.time() - started
        site.start_processes()
        memory_start = site.memory()
        result = drive(site, args)
        result.update(setup_s=round(t_setup, 1), memory={"start": memory_start, "end": site.memory()},
                      restarts={n: p.starts - 1 for n, p in site.procs.items()}, media_fs=site.media_kind,
                      source=site.commit, training_queue=site.training_queue)
        acks_file = site.tmp / "acks.json"
        acks_file.write_text(json.dumps(site.rec.acks, default=str))
        verified = subprocess.run([PYTHON, str(BENCH / "soak_verify.py"), str(site.seed_file), str(acks_file)],
                                  cwd=site.src, env=site.env(), capture_output=True, text=True, timeout=600)
        line = next((ln for ln in verified.stdout.splitlines() if ln.startswith("VERIFY ")), None)
        result["invariants"] = json.loads(line[7:]) if line else {"verify_failed": {"ok": False,
                                                                                    "stderr": verified.stderr[-3000:]}}
        result["invariants"]["no_5xx_outside_fault_windows"] = {"ok": not result["http"]["outside_5xx"],
                                                                "count": len(result["http"]["outside_5xx"])}
        result["invariants"]["every_fault_injected_and_recovered"] = {
            "ok": all(f["t_inject_s"] is not None and f["recovery_s"] is not None and not f["error"]
                      for f in result["faults"]), "faults": len(result["faults"])}
        result["ok"] = all(v.get("ok") for v in result["invariants"].values())
        result["logs"] = str(site.tmp) if args.keep else None
        return result
    finally:
        if args.keep:
            print(f"kept: {site.tmp}", file=sys.stderr)
        site.teardown()


def drive(site: Site, args) -> dict:
    seed, rec, stop = site.seed, site.rec, site.stop
    rng = site.rng
    budget = max(50, int(args.duration * 4))  # requests per actor: ~4/s at most, whatever happens
    threads = []
    password = seed["password"]

    def spawn(target, *a, name):
        t = threading.Thread(target=target, args=a, name=name, daemon=True)
        t.start()
        threads.append(t)

    # Log in first (not timed as load): viewer accounts share sessions across viewers.
    cookies = {}
    for name in seed["viewers"]:
        c = Client(rec, site.ports, f"login-{name}", 100, stop)
        c.login_session(name, password)
        cookies[name] = c.http.cookies.get_dict()
    paths = []
    for name in seed["pathologists"] + ["soak-path-1"]:
        c = Client(rec, site.ports, f"path-{len(paths)}", budget, stop)
        c.login_token(name, password)
        paths.append(c)
    site.fault_token = paths[-1].token
    annots = []
    for name in seed["annotators"][:args.annotators]:
        c = Client(rec, site.ports, f"annot-{name}", budget, stop)
        c.login_token(name, password)
        annots.append((name, c))

    t0 = time.monotonic()
    t_end = t0 + args.duration
    faults = schedule(random.Random(args.seed + 1), t0, args.duration) if not args.no_faults else []
    injector = Injector(site, faults, recover_timeout=args.recover_timeout or max(120.0, 3 * args.batch_deadline + 60))

    for port in site.ports:
        probe = Client(rec, [port], f"probe-{port}", 10**9, stop)
        probe.token = paths[-1].token  # an authenticated read: the database is in the answer
        spawn(prober, probe, seed, stop, port, name=f"probe-{port}")
    for i in range(args.viewers):
        account = seed["viewers"][i % len(seed["viewers"])]
        spawn(viewer, Client(rec, site.ports, f"viewer-{i}", budget, stop), seed, random.Random(rng.random()),
              cookies[account], name=f"viewer-{i}")
    for name, c in annots:
        spawn(annotator, c, seed, random.Random(rng.random()), name, name=f"annot-{name}")
    for i in range(min(args.pathologists, 2)):
        spawn(pathologist, paths[i], seed, random.Random(rng.random()), name=f"path-{i}")
    upload_files = seed["uploads"][2:]
    site.uploader_client = Client(rec, site.ports, "uploader", budget, stop)
    site.uploader_client.token = paths[0].token
    spawn(uploader, site.uploader_client, seed, random.Random(rng.random()), upload_files, name="uploader")
    rep = Client(rec, site.ports, "reporter", budget, stop)
    rep.token = paths[1].token if len(paths) > 2 else paths[0].token
    spawn(reporter, rep, seed, random.Random(rng.random()), password, args.max_signed, name="reporter")
    job_threads = []
    for s in range(args.jobs):
        c = Client(rec, site.ports, f"jobs-{s}", 10**6, threading.Event())  # jobs are followed to their end
        c.token = paths[0].token
        t = threading.Thread(target=job_stream, args=(c, seed, s, args.max_jobs, t_end - args.job_lead), daemon=True)
        t.start()
        job_threads.append(t)
    if args.training_steps:
        tc = Client(rec, site.ports, "trainer", 100, stop)
        tc.token = paths[0].token
        spawn(trainer, tc, seed, f"soak-model-{args.seed}-{int(time.time())}", args.training_steps,
              0.1 * args.duration, name="trainer")
    injector.start()

    stop.wait(max(0.0, t_end - time.monotonic()))
    # The load goes on until every fault has been injected and recovered from (bounded): a fault after
    # the load would test nothing.
    injector.join(len(faults) * injector.recover_timeout)
    stop.wait(3)
    stop.set()
    t_stop = time.monotonic()
    for t in threads:
        t.join(90)
    drain_end = time.monotonic() + args.drain
    for t in job_threads:
        t.join(max(1.0, drain_end - time.monotonic()))
    training_deadline = time.monotonic() + args.drain
    while args.training_steps and time.monotonic() < training_deadline:
        names = [a["name"] for a in rec.acks["training"]]
        if not names:
            break
        done = site.sql("SELECT COUNT(*) FROM django_q_task WHERE name LIKE 'train-%'")[0][0]
        if done >= len(names):
            break
        time.sleep(2)
    return summarise(rec, faults, t0, t_stop, args)


# --- numbers --------------------------------------------------------------------------------


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q / 100 * (len(values) - 1)))))
    return round(values[k] * 1000, 1)


def summarise(rec: Recorder, faults: list[Fault], t0: float, t_stop: float, args) -> dict:
    windows = [w for w in (f.window() for f in faults) if w]

    def in_window(e):
        return any(e.t0 <= b and e.t1 >= a for a, b in windows)

    events = list(rec.events)
    load = [e for e in events if t0 <= e.t0 <= t_stop and e.op not in ("login", "probe")]
    outside = [e for e in events if not in_window(e)]
    failed = lambda e: e.status in ("conn", "timeout") or (isinstance(e.status, int) and e.status >= 500)  # noqa: E731
    outside_5xx = [vars(e) for e in outside if failed(e)]
    inside_errors: dict = {}
    error_samples: dict = {}
    for e in events:
        if in_window(e) and (failed(e) or (isinstance(e.status, int) and e.status >= 400)):
            body = e.detail.lstrip()
            clear = "json" if body.startswith("{") else ("html" if body.startswith("<") else "none")
            key = f"{e.status} ({clear} body)" if isinstance(e.status, int) else f"{e.status} (no answer)"
            inside_errors[key] = inside_errors.get(key, 0) + 1
            samples = error_samples.setdefault(key, [])
            if len(samples) < 3:
                samples.append(f"{e.actor} {e.op} port {e.port}: {e.detail[:160]}")
    latency = {}
    for op in ("tile", "overlay", "autosave", "corrections-save", "regions-save", "upload", "report-download",
               "report-sign"):
        ok = [e.t1 - e.t0 for e in load if e.op == op and e.status in (200, 201) and not in_window(e)]
        latency[op] = {"n": len(ok), "p50_ms": percentile(ok, 50), "p95_ms": percentile(ok, 95),
                       "max_ms": percentile(ok, 100)}
    counts = {}
    for e in load:
        counts[e.op] = counts.get(e.op, 0) + 1
    fault_rows = []
    for f in faults:
        rel = (lambda t: round(t - t0, 1) if t is not None else None)  # noqa: E731
        fault_rows.append({"kind": f.kind, "t_inject_s": rel(f.t_inject), "t_back_s": rel(f.t_back),
                           "recovery_s": round(f.t_recovered - f.t_inject, 1) if f.t_recovered and f.t_inject else None,
                           "after_back_s": round(f.t_recovered - f.t_back, 1) if f.t_recovered and f.t_back else None,
                           "details": f.details, "error": f.error})
    return {"duration_s": args.duration, "load_s": round(t_stop - t0, 1), "requests": len(load),
            "requests_by_op": counts, "latency": latency, "faults": fault_rows,
            "http": {"outside_5xx": outside_5xx[:50], "inside_windows": inside_errors,
                     "inside_samples": error_samples}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600, help="seconds of load")
    ap.add_argument("--viewers", type=int, default=50)
    ap.add_argument("--annotators", type=int, default=5)
    ap.add_argument("--pathologists", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2, help="concurrent analysis job streams")
    ap.add_argument("--max-jobs", type=int, default=4, help="jobs per stream at most")
    ap.add_argument("--job-lead", type=float, default=60, help="no new job in the last N seconds of load")
    ap.add_argument("--training-steps", type=int, default=30)
    ap.add_argument("--uploads", type=int, default=20)
    ap.add_argument("--max-signed", type=int, default=5)
    ap.add_argument("--batch-deadline", type=int, default=60, help="BATCH_DEADLINE_SECONDS of the workers")
    ap.add_argument("--media-mb", type=int, default=512, help="size of MEDIA_ROOT's own file system")
    ap.add_argument("--recover-timeout", type=float, default=0,
                    help="seconds a fault may take to recover before it counts as not recovered "
                         "(default: 3 batch deadlines + 60 s, at least 120 s)")
    ap.add_argument("--drain", type=float, default=420, help="seconds to let jobs and training end after the load")
    ap.add_argument("--no-faults", action="store_true")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--source", choices=["tree", "head"], default="tree",
                    help="run the checkout as it is, or a snapshot of its last commit (git archive HEAD)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    ap.add_argument("--out", type=Path, help="write the result JSON here")
    ap.add_argument("--write-md", action="store_true", help="write bench/RESULTS-soak.md")
    args = ap.parse_args(argv)

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)  # e.g. a CI timeout: tear down as on Ctrl-C
    result = run(args)
    result["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    text = json.dumps(result, indent=1, default=str)
    if args.out:
        args.out.write_text(text)
    if args.write_md:
        from soak_report import write_markdown

        write_markdown(result, BENCH / "RESULTS-soak.md")
    print(json.dumps({"ok": result["ok"], "invariants": {k: v.get("ok") for k, v in result["invariants"].items()}}))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
