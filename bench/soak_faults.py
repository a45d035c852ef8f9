"""Faults of the soak (bench/soak.py), each injected once at a seeded random moment, with the time the
system took to recover from it.

For every fault: `t_inject` (it happened), `t_back` (the component is back: restarted by the
harness, as systemd's Restart= would, or the disk freed) and `t_recovered` (the work it hit is done
or flowing again, defined per fault below). The window [t_inject - 1 s, t_recovered + 3 s] is where
errors are expected; outside every window no request may answer 5xx.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from dataclasses import dataclass, field

from soak_load import slow_upload

KINDS = ("qcluster", "daphne", "redis", "postgres", "disk")
ACTIVE = "('queued', 'running', 'merging')"


@dataclass
class Fault:
    kind: str
    planned_at: float
    t_inject: float | None = None
    t_back: float | None = None
    t_recovered: float | None = None
    details: dict = field(default_factory=dict)
    error: str | None = None

    def window(self) -> tuple[float, float] | None:
        if self.t_inject is None:
            return None
        end = self.t_recovered or self.t_back or self.t_inject
        return self.t_inject - 1.0, end + 3.0


def schedule(rng: random.Random, t_start: float, duration: float, kinds=KINDS) -> list[Fault]:
    """One fault of each kind, in a random order, each at a random moment of its own slot between
    10 % and 85 % of the run (slots keep the recoveries from overlapping)."""
    order = list(kinds)
    rng.shuffle(order)
    first, last = t_start + 0.10 * duration, t_start + 0.85 * duration
    slot = (last - first) / len(order)
    return [Fault(kind, first + i * slot + rng.uniform(0, 0.4 * slot)) for i, kind in enumerate(order)]


class Injector:
    """Runs the schedule in a thread. `site` is the harness (bench/soak.Site): processes, services,
    plain SQL on the private database, the recorder and a pathologist's token."""

    def __init__(self, site, faults: list[Fault], recover_timeout: float):
        self.site, self.faults, self.recover_timeout = site, faults, recover_timeout
        self.thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def start(self):
        self.thread.start()

    def join(self, timeout=None):
        self.thread.join(timeout)

    def _run(self):
        for fault in self.faults:
            delay = fault.planned_at - time.monotonic()
            if delay > 0 and self.site.stop.wait(delay):
                return
            try:
                getattr(self, f"_{fault.kind}")(fault)
            except Exception:  # noqa: BLE001  recorded in the results, never silently lost
                fault.error = traceback.format_exc()[-2000:]

    # --- helpers ---

    def _until(self, predicate, timeout=None, interval=0.25):
        end = time.monotonic() + (timeout or self.recover_timeout)
        while time.monotonic() < end:
            try:
                if predicate():
                    return time.monotonic()
            except Exception:  # noqa: BLE001  the database may still be coming back
                pass
            time.sleep(interval)
        return None

    def _active_jobs(self) -> dict[int, tuple[str, int]]:
        rows = self.site.sql(f"SELECT id, status, batches_done FROM analysis_analysisjob WHERE status IN {ACTIVE}")
        return {r[0]: (r[1], r[2]) for r in rows}

    def _progressed(self, before: dict[int, tuple[str, int]]):
        """Every job active before the fault has moved on (a batch done, merged, or ended) since."""
        def check():
            now = {r[0]: (r[1], r[2]) for r in self.site.sql(
                "SELECT id, status, batches_done FROM analysis_analysisjob WHERE id IN (%s)"
                % ",".join(str(j) for j in before))} if before else {}
            return all(now.get(j) != state for j, state in before.items())
        return check

    def _probe_ok_after(self, t: float, ports):
        def check():
            ok = {e.port for e in list(self.site.rec.events)
                  if e.op == "probe" and e.t0 >= t and e.status == 200}
            return all(p in ok for p in ports)
        return check

    def _wait_for_in_flight(self, attr: str, timeout: float) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            n = getattr(self.site.rec, attr)
            if n:
                return n
            time.sleep(0.02)
        return 0

    # --- the faults ---

    def _qcluster(self, f: Fault):
        """SIGKILL one analysis qcluster (its whole process group) while it holds a batch if possible;
        recovered when every batch leased at the kill is done (after the deadline requeue) or its job ended."""
        leased = []
        end = time.monotonic() + 30
        while time.monotonic() < end and not leased:
            leased = self.site.sql("SELECT b.job_id, b.index FROM analysis_jobbatch b JOIN analysis_analysisjob j "
                                   "ON j.id = b.job_id WHERE b.status = 'leased' AND j.status = 'running'")
            time.sleep(0.2) if not leased else None
        victim = self.site.rng.choice(["analysis-1", "analysis-2"])
        f.t_inject = time.monotonic()
        self.site.procs[victim].kill()
        f.details.update(victim=victim, leased_batches_at_kill=len(leased))
        self.site.procs[victim].start()
        f.t_back = self._until(self.site.procs[victim].ready, 120)

        def done():
            if not leased:
                return True
            rows = self.site.sql("SELECT COUNT(*) FROM analysis_jobbatch b JOIN analysis_analysisjob j ON j.id = b.job_id "
                                 "WHERE b.status != 'done' AND j.status = 'running' AND (b.job_id, b.index) IN (%s)"
                                 % ",".join(f"({j},{i})" for j, i in leased))
            return rows[0][0] == 0
        f.t_recovered = self._until(done)

    def _daphne(self, f: Fault):
        """SIGKILL the daphne an upload (or else a save) is going through, restart it; recovered when
        its port answers an authenticated API read."""
        uploads = self._wait_for_in_flight("uploads_in_flight", 25)
        saves = self.site.rec.saves_in_flight
        port = self.site.upload_port() if uploads else self.site.rng.choice(self.site.ports)
        victim = self.site.daphne_for(port)
        f.t_inject = time.monotonic()
        self.site.procs[victim].kill()
        f.details.update(victim=victim, uploads_in_flight=uploads, saves_in_flight=saves)
        self.site.procs[victim].start()
        f.t_back = self._until(self.site.procs[victim].ready, 60)
        f.t_recovered = self._until(self._probe_ok_after(f.t_back or time.monotonic(), [port]))

    def _redis(self, f: Fault):
        """Restart Redis (no persistence: queued tasks are lost); recovered when every job that was
        active has progressed (lost batches come back through the deadline requeue)."""
        before = self._active_jobs()
        f.t_inject = time.monotonic()
        self.site.redis.stop()
        self.site.redis.start()
        f.t_back = time.monotonic()
        f.details.update(active_jobs=len(before))
        f.t_recovered = self._until(self._progressed(before))

    def _postgres(self, f: Fault):
        """Stop PostgreSQL (fast shutdown), keep it down 5 s, start it; recovered when both daphnes
        answer an authenticated read and every active job has progressed."""
        before = self._active_jobs()
        f.t_inject = time.monotonic()
        self.site.pg.stop("fast")
        time.sleep(5)
        self.site.pg.start()
        f.t_back = time.monotonic()
        f.details.update(active_jobs=len(before), down_s=round(f.t_back - f.t_inject, 1))
        t_http = self._until(self._probe_ok_after(f.t_back, self.site.ports))
        t_jobs = self._until(self._progressed(before))
        f.details.update(http_recovered_s=round(t_http - f.t_back, 2) if t_http else None)
        f.t_recovered = max(t_http, t_jobs) if t_http and t_jobs else None

    def _disk(self, f: Fault):
        """Fill MEDIA_ROOT while an upload streams in; free it after >= 5 s; recovered when an upload
        is stored again."""
        site = self.site
        if not site.media.can_fill:
            f.error = f"skipped: MEDIA_ROOT is a plain folder ({site.media.kind}); mounting a small file system failed"
            return
        spare = site.spare_uploads.pop()
        answer = {}
        upload = threading.Thread(target=lambda: answer.update(
            result=slow_upload(site.ports[0], site.fault_token, site.seed["uploads_case"], spare, 8.0)))
        upload.start()
        time.sleep(2.0)
        f.t_inject = time.monotonic()
        f.details["ballast_bytes"] = site.media.fill()
        upload.join(120)
        time.sleep(max(0.0, 5.0 - (time.monotonic() - f.t_inject)))
        site.media.free()
        f.t_back = time.monotonic()
        status, body = answer.get("result", ("none", ""))
        f.details.update(upload_during_fault={"status": status, "body": body[:300], "file": spare})
        site.rec.ack("refused_uploads" if status != 201 else "uploads",
                     {"file": spare, "status": status, "detail": body[:300], "during": "disk"})
        again = site.spare_uploads.pop()

        def stored():
            status, body = slow_upload(site.ports[1], site.fault_token, site.seed["uploads_case"], again, 0.1)
            f.details["upload_after"] = {"status": status, "body": body[:200]}
            answer["after_body"] = body
            return status in (200, 201)
        f.t_recovered = self._until(stored, interval=1.0)
        if f.details.get("upload_after", {}).get("status") in (200, 201):
            import json as _json

            full = answer.get("after_body", "")
            body = _json.loads(full) if full.startswith("{") else {}
            site.rec.ack("uploads", {"file": again, "slide": body.get("id"), "sha256": body.get("sha256"),
                                     "status": f.details["upload_after"]["status"], "during": "disk-after"})
