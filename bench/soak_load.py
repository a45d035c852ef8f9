"""The soak's load (bench/soak.py): viewers, annotators, pathologists, uploads, reports and jobs,
each a thread with its own HTTP session, bounded in requests and time.

Every request is recorded (start, end, op, port, status or connection error) in a Recorder; every
write the server acknowledged is kept in `acks` for the final check (bench/soak_verify.py). A client
whose daphne does not answer (connection refused or reset) goes to the other port, as a load
balancer would, and a write whose answer was lost is resynchronised from the server (its outcome
is unknown, so it is never counted as acknowledged).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

TIMEOUT = (5, 60)


@dataclass
class Event:
    t0: float
    t1: float
    actor: str
    op: str
    port: int
    status: int | str  # HTTP status, or "conn" / "timeout" (no answer)
    detail: str = ""


@dataclass
class Recorder:
    events: list = field(default_factory=list)
    acks: dict = field(default_factory=lambda: {"annotations": [], "corrections": [], "regions": [], "uploads": [],
                                                "refused_uploads": [], "reports": [], "downloads": [], "jobs": [],
                                                "training": []})
    lock: threading.Lock = field(default_factory=threading.Lock)
    uploads_in_flight: int = 0
    saves_in_flight: int = 0

    def add(self, event: Event) -> None:
        self.events.append(event)

    def ack(self, kind: str, item: dict) -> None:
        with self.lock:
            self.acks[kind].append(item)


class Client:
    """One user's HTTP session on the two daphne ports, with failover and a request budget."""

    def __init__(self, rec: Recorder, ports: list[int], actor: str, budget: int, stop: threading.Event):
        self.rec, self.ports, self.actor, self.budget, self.stop = rec, ports, actor, budget, stop
        self.port_index = hash(actor) % len(ports)
        self.http = requests.Session()
        self.token: str | None = None

    @property
    def port(self) -> int:
        return self.ports[self.port_index]

    def call(self, method: str, path: str, op: str, **kw) -> requests.Response | None:
        if self.budget <= 0:
            self.stop.wait(1)
            return None
        self.budget -= 1
        headers = kw.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        port = self.port
        t0 = time.monotonic()
        try:
            r = self.http.request(method, f"http://127.0.0.1:{port}{path}", headers=headers, timeout=TIMEOUT, **kw)
        except requests.Timeout:
            self.rec.add(Event(t0, time.monotonic(), self.actor, op, port, "timeout"))
            return None
        except requests.ConnectionError as exc:
            self.rec.add(Event(t0, time.monotonic(), self.actor, op, port, "conn", type(exc).__name__))
            self.port_index = (self.port_index + 1) % len(self.ports)  # the balancer's failover
            return None
        detail = ""
        if r.status_code >= 400:
            detail = r.text[:300]
        self.rec.add(Event(t0, time.monotonic(), self.actor, op, port, r.status_code, detail))
        return r

    def login_token(self, username: str, password: str) -> None:
        for _ in range(30):
            r = self.call("POST", "/api/auth/token/", "login", json={"username": username, "password": password})
            if r is not None and r.status_code == 200:
                self.token = r.json()["token"]
                return
            time.sleep(1)
        raise RuntimeError(f"could not obtain a token for {username}")

    def login_session(self, username: str, password: str) -> None:
        for _ in range(30):
            r = self.call("GET", "/accounts/login/", "login")
            if r is not None and r.status_code == 200:
                csrf = self.http.cookies.get("csrftoken")
                r = self.call("POST", "/accounts/login/", "login", allow_redirects=False,
                              data={"username": username, "password": password, "csrfmiddlewaretoken": csrf},
                              headers={"Referer": f"http://127.0.0.1:{self.port}/accounts/login/"})
                if r is not None and r.status_code == 302 and "sessionid" in self.http.cookies:
                    return
            time.sleep(1)
        raise RuntimeError(f"could not log in {username}")


def canonical(points) -> str:
    return hashlib.sha256(json.dumps(points, sort_keys=True).encode()).hexdigest()


# --- viewers ----------------------------------------------------------------------------------


class Pyramid:
    def __init__(self, dzi_xml: str):
        self.tile = int(re.search(r'TileSize="(\d+)"', dzi_xml).group(1))
        self.width = int(re.search(r'Width="(\d+)"', dzi_xml).group(1))
        self.height = int(re.search(r'Height="(\d+)"', dzi_xml).group(1))
        self.max_level = math.ceil(math.log2(max(self.width, self.height)))

    def grid(self, level: int) -> tuple[int, int, float]:
        scale = 2 ** (self.max_level - level)
        w, h = math.ceil(self.width / scale), math.ceil(self.height / scale)
        return math.ceil(w / self.tile), math.ceil(h / self.tile), scale


def viewer(client: Client, seed: dict, rng: random.Random, cookies) -> None:
    """Pans: a viewport of up to 3x2 tiles at one of the top levels, then its overlay points."""
    client.http.cookies.update(cookies)
    slide, job = seed["slide"], seed["reference_job"]
    pyramid = None
    while not client.stop.is_set() and client.budget > 0:
        if pyramid is None:
            r = client.call("GET", f"/viewer/slides/{slide}.dzi", "dzi")
            if r is None or r.status_code != 200:
                client.stop.wait(1)
                continue
            pyramid = Pyramid(r.text)
        level = rng.randint(pyramid.max_level - 3, pyramid.max_level)
        cols, rows, scale = pyramid.grid(level)
        c0, r0 = rng.randrange(max(1, cols - 2)), rng.randrange(max(1, rows - 1))
        for c in range(c0, min(cols, c0 + 3)):
            for rr in range(r0, min(rows, r0 + 2)):
                client.call("GET", f"/viewer/slides/{slide}_files/{level}/{c}_{rr}.jpeg", "tile")
        t = pyramid.tile * scale
        box = dict(x0=c0 * t, y0=r0 * t, x1=min(pyramid.width, (c0 + 3) * t), y1=min(pyramid.height, (r0 + 2) * t))
        client.call("GET", f"/api/viewer/jobs/{job}/points/", "overlay", params={**box, "max": 3000})
        client.stop.wait(rng.uniform(0.5, 1.5))


# --- annotators -------------------------------------------------------------------------------


# An annotator clicks each nucleus once: the server refuses two points of one set within 1.5 µm (one nucleus
# twice), and so does the page. 20 slide px are at least 1.5 µm at 0.075 µm/px or coarser (every scanner).
MIN_POINT_SPACING_PX = 20


def free_spot(points: list, field, rng: random.Random, tries: int = 50) -> dict | None:
    """A random spot of the field at least MIN_POINT_SPACING_PX from every point (None: the field is full)."""
    fx, fy, fw, fh = field
    for _ in range(tries):
        x, y = round(fx + rng.uniform(2, fw - 2), 1), round(fy + rng.uniform(2, fh - 2), 1)
        if all((x - p["x"]) ** 2 + (y - p["y"]) ** 2 >= MIN_POINT_SPACING_PX ** 2 for p in points):
            return {"x": x, "y": y}
    return None


def annotator(client: Client, seed: dict, rng: random.Random, username: str) -> None:
    """Edits its own field and autosaves the whole point set every ~2 s (compare-and-set)."""
    info = seed["sessions"][username]
    session, (fx, fy, fw, fh) = info["session"], info["field"]
    url = f"/api/annotation/sessions/{session}/points/"
    version, points = None, []
    while not client.stop.is_set() and client.budget > 0:
        if version is None:
            r = client.call("GET", url, "annotation-load")
            if r is None or r.status_code != 200:
                client.stop.wait(1)
                continue
            body = r.json()
            version, points = body["version"], body["points"]
        if points and rng.random() < 0.2:
            points.pop(rng.randrange(len(points)))
        else:
            point = free_spot(points, (fx, fy, fw, fh), rng)
            if point is not None:
                points.append({**point, "label": rng.choice(["positive", "negative"])})
        with client.rec.lock:
            client.rec.saves_in_flight += 1
        try:
            r = client.call("PUT", url, "autosave", json={"version": version, "points": points})
        finally:
            with client.rec.lock:
                client.rec.saves_in_flight -= 1
        if r is not None and r.status_code == 200:
            body = r.json()
            version, points = body["version"], body["points"]
            client.rec.ack("annotations", {"session": session, "version": version, "points_sha256": canonical(points),
                                           "n": len(points), "t": time.monotonic()})
        else:
            version = None  # conflict, error or lost answer: reload what the server has, as the page does
        client.stop.wait(rng.uniform(1.5, 2.5))


# --- pathologists -----------------------------------------------------------------------------


def pathologist(client: Client, seed: dict, rng: random.Random) -> None:
    """Corrects detections and draws regions on the reference job (two pathologists share it: 409s)."""
    job = seed["reference_job"]
    width, height = seed["slide_size"]
    base = None
    while not client.stop.is_set() and client.budget > 0:
        if base is None:
            r = client.call("GET", f"/api/viewer/jobs/{job}/corrections/", "corrections-load")
            if r is None or r.status_code != 200:
                client.stop.wait(1)
                continue
            base = r.json()["version"]
        roll = rng.random()
        if roll < 0.15:
            x, y, s = rng.uniform(200, width - 600), rng.uniform(200, height - 600), rng.uniform(100, 400)
            kind = "tumour" if rng.random() < 0.5 else "necrosis"
            body = {"kind": kind, "vertices": [[x, y], [x + s, y], [x + s, y + s], [x, y + s]], "base_version": base}
            path, what = f"/api/viewer/jobs/{job}/regions/", "regions"
        elif roll < 0.6:
            body = {"op": "add", "x": round(rng.uniform(10, width - 10), 1), "y": round(rng.uniform(10, height - 10), 1),
                    "label": rng.choice(["positive", "negative"]), "base_version": base}
            path, what = f"/api/viewer/jobs/{job}/corrections/", "corrections"
        else:
            body = {"op": "reclassify", "detection": rng.randrange(seed["reference_detections"]),
                    "label": rng.choice(["positive", "negative"]), "base_version": base}
            path, what = f"/api/viewer/jobs/{job}/corrections/", "corrections"
        with client.rec.lock:
            client.rec.saves_in_flight += 1
        try:
            r = client.call("POST", path, f"{what}-save", json=body)
        finally:
            with client.rec.lock:
                client.rec.saves_in_flight -= 1
        if r is not None and r.status_code == 201:
            answer = r.json()
            base = answer["version"]
            client.rec.ack(what, {"job": job, "version": base, "item": answer["item"]})
        elif r is not None and r.status_code == 400:
            pass  # e.g. "already positive": a clear refusal, nothing saved
        else:
            base = None  # a colleague saved in between (409), or the answer was lost: reload
        client.stop.wait(rng.uniform(2.0, 4.0))


def uploader(client: Client, seed: dict, rng: random.Random, files: list[str]) -> None:
    """Uploads SYNTHETIC slides to the case, one every ~15 s; a lost answer is retried with the same file
    (stored: 200 duplicate; not stored: 201)."""
    queue = list(files)
    while queue and not client.stop.is_set() and client.budget > 0:
        path = queue[0]
        with client.rec.lock:
            client.rec.uploads_in_flight += 1
        try:
            with open(path, "rb") as fh:
                r = client.call("POST", "/api/slides/", "upload", files={"files": (Path(path).name, fh)},
                                data={"case": seed["uploads_case"]})
        finally:
            with client.rec.lock:
                client.rec.uploads_in_flight -= 1
        if r is not None and r.status_code in (200, 201):
            body = r.json()
            client.rec.ack("uploads", {"file": path, "slide": body["id"], "sha256": body.get("sha256"),
                                       "status": r.status_code})
            queue.pop(0)
        elif r is not None and r.status_code < 500:
            client.rec.ack("refused_uploads", {"file": path, "status": r.status_code, "detail": r.text[:300]})
            queue.pop(0)
        client.stop.wait(rng.uniform(10, 20))


def slow_upload(port: int, token: str, case: int, path: str, seconds: float) -> tuple[int | str, str]:
    """One upload streamed over `seconds` (the disk fills while it is in flight): (status, body)."""
    boundary = uuid.uuid4().hex
    data = Path(path).read_bytes()
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"case\"\r\n\r\n{case}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{Path(path).name}\"\r\n"
            "Content-Type: image/tiff\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = head + data + tail
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest("POST", "/api/slides/")
        conn.putheader("Authorization", f"Token {token}")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        chunks = [body[i:i + 32768] for i in range(0, len(body), 32768)]
        for chunk in chunks:
            conn.send(chunk)
            time.sleep(seconds / len(chunks))
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")[:20000]
    except OSError as exc:
        return "conn", repr(exc)
    finally:
        conn.close()


# --- reports ----------------------------------------------------------------------------------


def reporter(client: Client, seed: dict, rng: random.Random, password: str, max_signed: int) -> None:
    """Drafts the case's report from the reference job, signs it (password, and the draft_fingerprint of the
    draft as it read it), downloads PDF and FHIR, re-downloads every signed version (same bytes every time),
    amends, signs again."""
    case, job = seed["case"], seed["reference_job"]
    signed: dict[int, dict] = {}  # report id -> {"pdf": sha, "fhir": sha}
    draft = fingerprint = None  # the open draft, and its draft_fingerprint as last read (None: read it)

    def sign():
        return client.call("POST", f"/api/reports/{draft}/sign/", "report-sign",
                           json={"password": password, "draft_fingerprint": fingerprint})

    while not client.stop.is_set() and client.budget > 0:
        if draft is None and len(signed) < max_signed:
            if signed:
                last = max(signed)
                r = client.call("POST", f"/api/reports/{last}/amend/", "report-amend",
                                json={"reason": "soak: amended with the latest corrections"})
                if r is not None and r.status_code == 201:
                    draft, fingerprint = r.json()["id"], r.json().get("draft_fingerprint")
                elif r is not None and r.status_code == 400:
                    draft, fingerprint = _open_draft(client, case), None
            else:
                r = client.call("POST", "/api/reports/", "report-draft", json={"case": case, "job": job})
                if r is not None and r.status_code == 201:
                    draft, fingerprint = r.json()["id"], r.json().get("draft_fingerprint")
        if draft is not None and fingerprint is None:
            fingerprint = _draft_fingerprint(client, draft)
            if fingerprint is None:  # no longer a draft (signed before an answer was lost), or not read
                _resync_signed(client, case, signed)
                draft = None if _is_signed(client, draft) else draft
        if draft is not None and fingerprint is not None:
            # Signed straight after it is (re)prepared or read, as a pathologist who has checked it.
            r = sign()
            if r is not None and r.status_code == 400 and "prepare the draft again" in r.text:
                # Corrections by the other load users changed the job since the draft: refill it (the open
                # draft, an amendment's too) and sign what the refill returned at once.
                refill = client.call("POST", "/api/reports/", "report-draft", json={"case": case, "job": job})
                fingerprint = refill.json().get("draft_fingerprint") if (
                    refill is not None and refill.status_code == 201) else None
                r = sign() if fingerprint is not None else None  # refill unanswered: read at the next turn
            if r is not None and r.status_code == 200:
                body = r.json()
                signed[draft] = dict(body.get("document_sha256") or {})
                client.rec.ack("reports", {"report": draft, "document_sha256": signed[draft]})
                draft = fingerprint = None
            elif r is not None and r.status_code == 400 and "prepare the draft again" in r.text:
                fingerprint = None  # changed again between refill and signing: refilled at the next turn
            elif r is not None and r.status_code == 409:
                # The draft changed since it was read (prepared again), or it is no longer a draft: read again.
                fingerprint = None
                if "no longer a draft" in r.text:
                    draft = _open_draft(client, case)
                    if draft is None:
                        _resync_signed(client, case, signed)
            elif r is not None and r.status_code == 400:
                fingerprint = None
            elif r is None:
                _resync_signed(client, case, signed)  # the answer was lost: did it sign?
                draft = None if _is_signed(client, draft) else draft
                fingerprint = None
        for report, shas in list(signed.items()):
            for kind in ("pdf", "fhir"):
                r = client.call("GET", f"/api/reports/{report}/{kind}/", "report-download")
                if r is not None and r.status_code == 200:
                    got = hashlib.sha256(r.content).hexdigest()
                    client.rec.ack("downloads", {"report": report, "kind": kind, "sha256": got,
                                                 "header": r.headers.get("X-Content-SHA256"),
                                                 "signed_sha256": shas.get(kind)})
        client.stop.wait(rng.uniform(4, 8))


def _open_draft(client: Client, case: int) -> int | None:
    r = client.call("GET", "/api/reports/", "report-list", params={"case": case, "status": "draft"})
    if r is not None and r.status_code == 200:
        rows = r.json().get("results", [])
        return rows[0]["id"] if rows else None
    return None


def _draft_fingerprint(client: Client, report: int) -> str | None:
    """The draft_fingerprint of `report` as read now (None: not a draft any more, or not read)."""
    r = client.call("GET", f"/api/reports/{report}/", "report-get")
    if r is not None and r.status_code == 200:
        return r.json().get("draft_fingerprint")
    return None


def _is_signed(client: Client, report: int) -> bool:
    r = client.call("GET", f"/api/reports/{report}/", "report-get")
    return r is not None and r.status_code == 200 and r.json()["status"] != "draft"


def _resync_signed(client: Client, case: int, signed: dict) -> None:
    r = client.call("GET", "/api/reports/", "report-list", params={"case": case})
    if r is not None and r.status_code == 200:
        for row in r.json().get("results", []):
            if row["status"] != "draft" and row["id"] not in signed:
                signed[row["id"]] = dict(row.get("document_sha256") or {})
                client.rec.ack("reports", {"report": row["id"], "document_sha256": signed[row["id"]],
                                           "resynced": True})


# --- analysis jobs and training ---------------------------------------------------------------


def job_stream(client: Client, seed: dict, stream: int, max_jobs: int, start_by: float) -> None:
    """Starts a job on the slide, follows it to the end, starts the next (until `start_by`); a job that
    failed is retried once through the API, as an operator would after a fault."""
    started = 0
    while started < max_jobs and time.monotonic() < start_by and not client.stop.is_set():
        r = client.call("POST", "/api/jobs/", "job-start", json={"slide": seed["slide"]})
        if r is None or r.status_code != 201:
            time.sleep(2)
            continue
        job, started, retried = r.json()["id"], started + 1, 0
        record = {"job": job, "stream": stream, "retries": [], "t_start": time.monotonic()}
        while True:
            time.sleep(1)
            r = client.call("GET", f"/api/jobs/{job}/", "job-poll")
            if r is None or r.status_code != 200:
                continue
            body = r.json()
            if body["status"] == "failed" and retried < 2:
                record["retries"].append(body["error"][:300])
                retried += 1
                client.call("POST", f"/api/jobs/{job}/retry/", "job-retry")
                continue
            if body["status"] in ("done", "failed", "cancelled"):
                record.update(status=body["status"], error=body["error"][:300], t_end=time.monotonic())
                break
            if time.monotonic() > start_by + 900:
                record.update(status=f"stuck in {body['status']}", t_end=time.monotonic())
                break
        client.rec.ack("jobs", record)


def trainer(client: Client, seed: dict, name: str, steps: int, delay: float) -> None:
    if client.stop.wait(delay):
        return
    for _ in range(20):
        r = client.call("POST", f"/api/annotation/projects/{seed['training_project']}/train-model/", "train",
                        json={"name": name, "steps": steps, "backbone": "resnet18"})
        if r is not None and r.status_code == 202:
            client.rec.ack("training", {"name": name, **r.json()})
            return
        if r is not None and r.status_code == 400 and "already registered" in r.text:
            return
        if r is not None and r.status_code == 400 and "is queued or running" in r.text:
            # An earlier attempt was queued but its answer was lost (a fault window): that run is ours, and
            # the invariant still asks that it registers its model.
            client.rec.ack("training", {"name": name, "task": None, "answer_lost": True})
            return
        time.sleep(3)


def prober(client: Client, seed: dict, stop: threading.Event, port: int) -> None:
    """A cheap authenticated read on one port every 0.5 s: when each port answers again after a fault."""
    client.ports, client.port_index = [port], 0
    while not stop.is_set():
        client.budget = 10**9
        client.call("GET", f"/api/viewer/jobs/{seed['reference_job']}/state/", "probe")
        stop.wait(0.5)
