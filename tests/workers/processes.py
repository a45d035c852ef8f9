"""Real processes for worker fault tests: a fresh database, `qcluster` workers, and a driver.

Everything runs against a database of its own (a SQLite file, or a PostgreSQL database created
and dropped here) so that separate processes see the same committed rows whatever pytest-django
does with the test database; the platform is configured through its environment variables
exactly as in production (pdl1site.settings, not tests.settings).

    python -m tests.workers.processes serve

is the driver: one Django process, already set up, that takes JSON commands on stdin (ingest a
slide, start / cancel a job, run a job inline) and answers one line each, prefixed REPLY.
The test process itself reads job and batch rows with plain SQL (sqlite3 / psycopg).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
REPLY = "REPLY "
REDIS_DB = 13  # a Redis database of its own: no other queue consumer takes these tasks


class Timeout(AssertionError):
    pass


def wait_for(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


# --- the database ---------------------------------------------------------------------------


class Database:
    """A fresh database for one scenario: its URL for the processes, plain SQL for the test."""

    def __init__(self, url: str, drop=None):
        self.url = url
        self._drop = drop
        parts = urlsplit(url)
        self.sqlite = parts.scheme == "sqlite"
        self._conn = None

    @classmethod
    def create(cls, tmp_path: Path, base_url: str | None) -> Database:
        if not base_url or urlsplit(base_url).scheme == "sqlite":
            return cls(f"sqlite:///{tmp_path / 'faults.sqlite3'}")
        import psycopg

        name = f"pdl1_faults_{uuid.uuid4().hex[:10]}"
        parts = urlsplit(base_url)
        admin = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop():
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        return cls(urlunsplit(parts._replace(path=f"/{name}")), drop=drop)

    def rows(self, sql: str) -> list[tuple]:
        if self._conn is None:
            if self.sqlite:
                self._conn = sqlite3.connect(urlsplit(self.url).path, timeout=30, isolation_level=None)
            else:
                import psycopg

                self._conn = psycopg.connect(self.url, autocommit=True)
        return list(self._conn.execute(sql).fetchall())

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._drop is not None:
            self._drop()
            self._drop = None

    # rows the tests look at

    def job(self, job_id: int) -> dict:
        (row,) = self.rows(f"SELECT status, error, batches_total, batches_done, result_file, finished_at "
                           f"FROM analysis_analysisjob WHERE id = {int(job_id)}")
        return dict(zip(("status", "error", "batches_total", "batches_done", "result_file", "finished_at"),
                        row[:5] + (as_datetime(row[5]),)))

    def batches(self, job_id: int) -> list[dict]:
        rows = self.rows(f'SELECT "index", status, attempts, deadline FROM analysis_jobbatch '
                         f"WHERE job_id = {int(job_id)} ORDER BY \"index\"")
        return [{"index": i, "status": s, "attempts": a, "deadline": as_datetime(d)} for i, s, a, d in rows]

    def training_run(self, run_id: int) -> dict:
        keys = ("status", "steps_done", "steps_total", "loss", "eta_seconds", "model_version_id", "error")
        (row,) = self.rows(f"SELECT {', '.join(keys)} FROM workers_trainingrun WHERE id = {int(run_id)}")
        return dict(zip(keys, row))

    def clusters_that_ran(self, group: str) -> set[str]:
        """Cluster names (queues) of the workers that finished the tasks of a django-q group."""
        return {name for (name,) in self.rows(f"SELECT cluster FROM django_q_task WHERE \"group\" = '{group}'")}

    def tasks_run(self, job_id: int, func: str) -> int:
        """Tasks of this job that a worker finished (the monitor saves each result)."""
        (row,) = self.rows(f"SELECT COUNT(*) FROM django_q_task WHERE \"group\" = 'job-{int(job_id)}' "
                           f"AND func = '{func}'")
        return int(row[0])


def as_datetime(value):
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)
    # SQLite: Django stores UTC as "YYYY-MM-DD HH:MM:SS[.ffffff]"
    return datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc)


def redis_url_for_tests(base_url: str | None) -> str | None:
    if not base_url:
        return None
    return urlunsplit(urlsplit(base_url)._replace(path=f"/{REDIS_DB}"))


def clear_redis_queue(redis_url: str | None, queues: tuple[str, ...] = ("pdl1",)) -> None:
    if not redis_url:
        return
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key for queue in queues for key in client.scan_iter(f"django_q:{queue}:*")]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# --- processes ------------------------------------------------------------------------------


def environment(db: Database, redis_url: str | None, media_root: Path, deadline_s: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "pdl1site.settings",
        "SECRET_KEY": "faults-test-only-secret-key",
        "DATABASE_URL": db.url,
        "MEDIA_ROOT": str(media_root),
        "PDL1_VAR_DIR": str(media_root.parent / "var"),
        "Q_WORKERS": "1",
        "Q_TIMEOUT": "600",
        "Q_RETRY": "3600",  # far beyond the test: only our deadline requeue can bring a batch back
        "BATCH_DEADLINE_SECONDS": str(deadline_s),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
    })
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def migrate(env: dict, log: Path) -> None:
    with open(log, "ab") as out:
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, stdout=out,
                       stderr=subprocess.STDOUT, check=True, timeout=300)


class Cluster:
    """`manage.py qcluster` in a session of its own: the whole tree can be killed at the end."""

    def __init__(self, name: str, env: dict, log: Path, queue: str | None = None):
        """`queue`: the django-q2 cluster name (queue) it takes, e.g. "training"; None: the default."""
        self.name, self.log = name, log
        self._out = open(log, "ab")
        if queue:
            env = {**env, "Q_CLUSTER_NAME": queue}
        self.proc = subprocess.Popen([PYTHON, "manage.py", "qcluster"], cwd=REPO, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def worker_pids(self) -> list[int]:
        """Live worker processes of this cluster, from its log ("... ready for work at PID"),
        each checked to descend from this cluster's process."""
        pids = [int(m) for m in re.findall(r"ready for work at (\d+)", self.log.read_text(errors="replace"))]
        return [pid for pid in dict.fromkeys(pids) if _alive(pid) and _descends_from(pid, self.proc.pid)]

    def wait_ready(self, timeout: float = 60) -> list[int]:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"cluster {self.name} exited: {self.log.read_text()[-3000:]}")
            return self.worker_pids()

        return wait_for(ready, timeout, message=f"a worker of cluster {self.name}")

    def kill_workers(self) -> list[int]:
        killed = self.worker_pids()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(_alive(pid) for pid in killed), 10, 0.02, "the killed workers to die")
        return killed

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the session: cluster, sentinel, workers
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._out.close()


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2:].split()  # fields after "pid (comm) "


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(10):
        fields = _stat(pid)
        if fields is None:
            return False
        pid = int(fields[1])
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
    return False


class Driver:
    """The `serve` process: Django set up once, commands answered in milliseconds."""

    def __init__(self, env: dict, log: Path):
        self._err = open(log, "ab")
        self.proc = subprocess.Popen([PYTHON, "-m", "tests.workers.processes", "serve"], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     start_new_session=True)
        self.log = log

    def __call__(self, cmd: str, **args):
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"driver exited: {self.log.read_text()[-3000:]}")
            if line.startswith(REPLY):
                reply = json.loads(line[len(REPLY):])
                if "driver_failure" in reply:
                    raise AssertionError(f"driver {cmd} failed: {reply['driver_failure']}")
                return reply

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._err.close()


# --- the driver's side ----------------------------------------------------------------------


def _serve() -> None:
    import traceback

    import django

    django.setup()
    from django.db import connections

    from analysis.models import AnalysisJob
    from cases.models import Slide
    from cases.services import IngestSource, do_ingest_slide
    from workers import queue
    from workers.services import do_cancel_job, do_start_job

    def ingest(path, truncate_to=None):
        slide = do_ingest_slide([IngestSource(name=Path(path).name, path=Path(path))]).slide
        if truncate_to is not None:
            stored = Path(slide.path)
            stored.write_bytes(stored.read_bytes()[:truncate_to])
        return {"slide": slide.pk, "path": slide.path}

    def start(slide, params):
        job = do_start_job(Slide.objects.get(pk=slide), detector="classic", parameters=params)
        return {"job": job.pk}

    def inline(slide, params):
        with queue.collecting() as pending:
            job = do_start_job(Slide.objects.get(pk=slide), detector="classic", parameters=params)
            while pending:
                queue.run(*pending.pop(0))
        job.refresh_from_db()
        return {"job": job.pk, "status": job.status, "error": job.error, "result_file": job.result_file}

    def cancel(job):
        return {"status": do_cancel_job(AnalysisJob.objects.get(pk=job)).status}

    def train(folder, name, steps):
        from workers.training import do_queue_training

        run = do_queue_training(group="processes-test", dataset=folder, name=name, steps=steps, backbone="resnet18",
                                mpp=0.5)
        return {"run": run.pk}

    def cancel_training(run):
        from workers.models import TrainingRun
        from workers.training import do_cancel_training

        return {"state": do_cancel_training(TrainingRun.objects.get(pk=run)).state_label}

    commands = {"ingest": ingest, "start": start, "inline": inline, "cancel": cancel, "train": train,
                "cancel_training": cancel_training}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = commands[request.pop("cmd")](**request)
        except Exception:  # reported to the test, which fails with it
            reply = {"driver_failure": traceback.format_exc()}
        finally:
            connections.close_all()
        sys.stdout.write(REPLY + json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        _serve()
    else:
        sys.exit("usage: python -m tests.workers.processes serve")
