"""The viewer's saves go one at a time (viewer/static/viewer/unsaved.js), in Node against a stub DOM and a fake
server with the real compare-and-set rule (tests/viewer/js/save_queue.mjs): two corrections made while the first
is in flight both land, each based on the version the one before it gave (they used to carry the same version,
and the second was refused as a conflict naming the user themself); corrections and region saves share the queue;
a colleague's save in between is still a conflict; a save in flight, a region with vertices placed, or moved
vertices count as unsaved work (leaving the page asks first) and nothing else does."""

import shutil
import subprocess

import pytest
from django.conf import settings

NODE = shutil.which("node")
HERE = settings.BASE_DIR / "tests" / "viewer" / "js"


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_viewer_sends_its_saves_one_at_a_time(tmp_path):
    # The served layout: static/viewer/*.js import ../common/*.js.
    shutil.copytree(settings.BASE_DIR / "viewer" / "static" / "viewer", tmp_path / "static" / "viewer")
    shutil.copytree(settings.BASE_DIR / "static" / "common", tmp_path / "static" / "common")
    for name in ("dom_stub.mjs", "save_queue.mjs"):
        shutil.copy(HERE / name, tmp_path / name)
    run = subprocess.run([NODE, str(tmp_path / "save_queue.mjs"), (tmp_path / "static").as_uri()],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "all ok" in run.stdout, run.stdout + run.stderr
