"""The viewer script's save rules, run in Node against a stub DOM and a scripted fetch (tests/viewer/js): for
machines without the headless Chromium of the browser tests, and quicker. What it checks:

- the page takes a version only when the corrections and regions answers agree on it (read again when they
  differ; no version, and no save, when they keep differing);
- a failed corrections load (503) clears the Scores block and says why; only the server's category is shown;
- a 409 on a region delete keeps the page's version (as saveRefused does for every save);
- an edit of a region's vertices, its undo and its redo are each one POST with `replaces`, never an add then
  a delete;
- an add refused as a duplicate (400 naming the point) selects that point; in add mode a click on a loaded
  point selects it instead of adding.
"""

import shutil
import subprocess

import pytest
from django.conf import settings

NODE = shutil.which("node")
HERE = settings.BASE_DIR / "tests" / "viewer" / "js"


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_viewer_scripts_save_rules(tmp_path):
    # The served layout: static/viewer/*.js import ../common/api.js.
    shutil.copytree(settings.BASE_DIR / "viewer" / "static" / "viewer", tmp_path / "static" / "viewer")
    shutil.copytree(settings.BASE_DIR / "static" / "common", tmp_path / "static" / "common")
    for name in ("dom_stub.mjs", "save_rules.mjs"):
        shutil.copy(HERE / name, tmp_path / name)
    run = subprocess.run([NODE, str(tmp_path / "save_rules.mjs"), (tmp_path / "static").as_uri()],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "all ok" in run.stdout, run.stdout + run.stderr
