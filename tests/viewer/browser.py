"""A live site for browser tests: its own database, daphne (HTTP + websockets), qcluster workers.

pytest-django's live_server is WSGI only and shares the test transaction, so the browser tests
run the platform as in production instead: a fresh database of their own (a SQLite file, or a
PostgreSQL database created and dropped here - tests.workers.processes.Database), configured
through environment variables (pdl1site.settings), served by daphne in a subprocess, with
`qcluster` workers started when a test runs a job. With REDIS_URL set, daphne and the workers
share a Redis channel layer, so job progress reaches the page over the websocket ("live");
without it (embedded mode) the page must fall back to polling.

    python -c "import django; django.setup(); from tests.viewer.browser import main; main()" setup TMPDIR

runs once in that environment, creates the users, slides and jobs below, and prints one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.workers.processes import (PYTHON, REPO, Cluster, Database, clear_redis_queue, environment, migrate,
                                     redis_url_for_tests, wait_for)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory
REPLY = "SETUP "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveSite:
    """Database, daphne and (on demand) workers for one test module; `stop()` ends them all."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.media = tmp_path / "media"
        (self.media / "tmp").mkdir(parents=True)
        self.db = Database.create(tmp_path, os.environ.get("DATABASE_URL"))
        self.redis_url = redis_url_for_tests(os.environ.get("REDIS_URL"))
        clear_redis_queue(self.redis_url)
        self.env = environment(self.db, self.redis_url, self.media, deadline_s=300)
        # DEBUG on: WhiteNoise serves static files through the finders (no collectstatic needed).
        self.env.update({"DEBUG": "1", "SESSION_COOKIE_AGE": "3600"})
        self.log = tmp_path / "site.log"
        self.procs: list[subprocess.Popen] = []
        self.cluster: Cluster | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.live_channel = self.redis_url is not None

    def start(self) -> dict:
        migrate(self.env, self.log)
        data = self._setup()
        self._daphne()
        return data

    # The module whose main() runs the setup in the site's environment (a subclass names its own).
    setup_module = "tests.viewer.browser"

    def _setup(self) -> dict:
        # Not `-m tests.viewer.browser`: the tests.viewer package imports models, so Django is set up first.
        code = f"import django; django.setup(); from {self.setup_module} import main; main()"
        out = subprocess.run([PYTHON, "-c", code, "setup", str(self.tmp)], cwd=REPO, env=self.env,
                             capture_output=True, text=True, timeout=180)
        for line in out.stdout.splitlines():
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY):])
        raise AssertionError(f"setup failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")

    def _daphne(self) -> None:
        out = open(self.log, "ab")
        proc = subprocess.Popen([PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                                 "pdl1site.asgi:application"], cwd=REPO, env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)

        def listening():
            if proc.poll() is not None:
                raise AssertionError(f"daphne exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
            return False

        wait_for(listening, 60, 0.1, "daphne to listen")

    def start_workers(self) -> Cluster:
        if self.cluster is None:
            self.cluster = Cluster("viewer", self.env, self.tmp / "workers.log")
            self.cluster.wait_ready(90)
        return self.cluster

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.db.close()
        clear_redis_queue(self.redis_url)


@contextlib.contextmanager
def running_site(site_class, folder: Path):
    """A started live site (daphne on a fresh database) for a module's tests; stopped afterwards."""
    live = site_class(folder)
    try:
        live.data = live.start()
        yield live
    finally:
        live.stop()


def site_fixture(setup_module: str, folder: str):
    """A module-scoped `site` fixture: a started live site whose setup is `setup_module`'s main()
    (`site = site_fixture(__name__, "browser-x")` in a test module)."""
    import pytest

    site_class = type("ModuleSite", (LiveSite,), {"setup_module": setup_module})

    @pytest.fixture(scope="module")
    def site(tmp_path_factory):
        with running_site(site_class, tmp_path_factory.mktemp(folder)) as live:
            yield live

    return site


@contextlib.contextmanager
def chromium_browser():
    """Debian's headless Chromium driven by Playwright, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_browser(pw)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def logged_in_page(browser, base_url: str, username: str, shot: str | None = None, width: int = 1280,
                   height: int = 800, timeout_ms: int = 20_000):
    """A page of its own browser context, logged in as `username`; afterwards a screenshot (`shot`)
    and a check that the page raised no JavaScript error (collected in page.js_errors)."""
    # bypass_csp: Playwright's wait_for_function evaluates its predicate with eval(), which the site's
    # Content-Security-Policy refuses; tests/pdl1site/test_browser_csp.py checks the pages under it.
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    login(page, base_url, username)
    try:
        yield page
        if shot:
            screenshot(page, shot)
    finally:
        context.close()
    assert not page.js_errors, f"JavaScript errors: {page.js_errors}"


def report_csp_violations(page) -> None:
    """A Content-Security-Policy refusal (Chromium logs it to the console) counts as a JavaScript error."""
    page.on("console", lambda msg: page.js_errors.append(f"CSP: {msg.text}")
            if "Content Security Policy" in msg.text else None)


def draw_square_region(page, kind: str, fraction: float = 0.3) -> None:
    """Draw a square region of `kind` round the viewer's centre (four clicks, closed with Enter)."""
    page.locator("#region-kind").select_option(kind)
    page.locator("#draw-region").click()
    box = page.locator("#osd").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    r = min(box["width"], box["height"]) * fraction
    for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        page.mouse.click(cx + dx * r, cy + dy * r)
        time.sleep(0.15)  # separate clicks, not a double-click
    page.wait_for_function("window.pdl1Viewer.drawing && window.pdl1Viewer.drawing.vertices.length === 4")
    page.locator("#osd .openseadragon-canvas").first.focus()
    page.keyboard.press("Enter")


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def login(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form [type=submit]")
    assert "/accounts/login/" not in page.url, f"login as {username} failed"


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


# Pixels of the overlay canvas close to the layer colours (red positive, yellow negative).
COUNT_OVERLAY_PIXELS = """() => {
  const c = document.querySelector('canvas.pdl1-overlay');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let red = 0, yellow = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] < 128) continue;
    const r = d[i], g = d[i + 1], b = d[i + 2];
    if (r > 180 && g < 80 && b < 90) red++;
    else if (r > 200 && g > 160 && b < 80) yellow++;
  }
  return {red, yellow};
}"""

# Page coordinates of the loaded point nearest the centre of the view with `label`. Points are in platform
# coordinates (pixel i's centre at i); OpenSeadragon's image coordinates put that centre at i + 0.5.
POINT_NEAR_CENTRE = """(label) => {
  const v = window.pdl1Viewer, viewer = v.viewer, vp = viewer.viewport;
  const rect = viewer.canvas.getBoundingClientRect();
  const best = v.pointsNearCentre(label);
  if (!best) return null;
  const p = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(best.x + 0.5, best.y + 0.5));
  return {x: rect.left + p.x, y: rect.top + p.y, id: best.id};
}"""


# --- the setup command (runs in the site's environment) ----------------------------------------


def _setup(tmp: Path) -> dict:
    import numpy as np
    from django.conf import settings

    from analysis.choices import JobStatus
    from analysis.detection_store import write_store
    from analysis.models import AnalysisJob
    from analysis.synthetic_slide import write_pyramidal_tiff
    from cases.choices import Role
    from cases.services import IngestSource, do_ingest_slide
    from tests.factories import CaseFactory, DepartmentFactory, make_user

    dept = DepartmentFactory(code="dept-a")
    make_user(Role.PATHOLOGIST, [dept], username="pathologist")
    make_user(Role.PATHOLOGIST, [dept], username="colleague")
    case = CaseFactory(patient__department=dept, accession="S26-BROWSER")

    def ingest(name, size, seed):
        tiff = write_pyramidal_tiff(tmp / name, size=size, mpp=0.5, seed=seed, tile=256, compression="zlib")
        return do_ingest_slide([IngestSource(name=name, path=Path(tiff.path))], case=case).slide

    def done_job(slide, n, seed, positive_fraction):
        rng = np.random.default_rng(seed)
        xy = rng.uniform([8, 8], [slide.width - 8, slide.height - 8], size=(n, 2)).astype(np.float32)
        labels = np.where(rng.random(n) < positive_fraction, 1, 2).astype(np.int8)
        scores = rng.uniform(0.5, 1.0, n).astype(np.float32)
        relative = f"jobs/browser-{slide.pk}/detections.store"
        write_store(Path(settings.MEDIA_ROOT) / relative, xy, labels, scores, width=slide.width, height=slide.height,
                    mpp=slide.mpp_x)
        pos, neg = int((labels == 1).sum()), int((labels == 2).sum())
        job = AnalysisJob.objects.create(slide=slide, detector="classic", status=JobStatus.DONE, result_file=relative,
                                         summary={"counts": {"positive": pos, "negative": neg, "other": 0},
                                                  "tps": 100 * pos / (pos + neg), "detections": n})
        return job.pk

    dense = ingest("SYNTHETIC-dense.tiff", (1024, 1024), 7)
    sparse = ingest("SYNTHETIC-sparse.tiff", (1024, 1024), 9)
    fresh = ingest("SYNTHETIC-fresh.tiff", (768, 768), 8)
    return {
        "dense": {"slide": dense.pk, "job": done_job(dense, 16000, 1, 0.45)},  # heatmap at home zoom
        "sparse": {"slide": sparse.pk, "job": done_job(sparse, 300, 2, 0.4)},  # TPS moves visibly
        "fresh": {"slide": fresh.pk},  # no job yet: the progress test runs one
    }


def main(setup=None) -> None:
    """Entry point of the setup subprocess (Django already set up by the caller); `setup(tmp) -> dict`
    is another module's setup (default: this module's)."""
    if len(sys.argv) == 3 and sys.argv[1] == "setup":
        result = (setup or _setup)(Path(sys.argv[2]))
        sys.stdout.write(REPLY + json.dumps(result) + "\n")
        sys.stdout.flush()
    else:
        sys.exit("usage: setup TMPDIR")
