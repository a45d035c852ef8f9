"""`manage.py analyze_slide`: the whole pipeline embedded, and clear errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.conftest import shared_slide

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
FIELDS = {"slide", "job", "counts", "tps", "tps_category", "category_note", "adequacy", "scores_basis",
          "detections_before_review", "tiles", "tissue_area_mm2", "timings_s", "detector", "detector_version",
          "provenance", "software_version", "detections_file"}


def test_analyze_a_slide_path(synthetic_slide_file, tmp_path, capsys):
    out = tmp_path / "result.json"
    call_command("analyze_slide", synthetic_slide_file.path, "--detector", "classic", "--json", str(out),
                 "--no-progress")
    result = json.loads(out.read_text())
    assert set(result) == FIELDS
    truth = synthetic_slide_file.labels
    found = result["counts"]["positive"] + result["counts"]["negative"]
    assert abs(found - len(truth)) < 0.15 * len(truth)
    # A bare file is in no case: no clone or indication, so no category (never lung 22C3's by default).
    assert result["tps_category"] is None and "in no case" in result["category_note"]
    assert result["adequacy"]["adequate"] and result["detections_before_review"]["counts"] == result["counts"]
    assert result["tiles"] > 0 and result["tissue_area_mm2"] > 0
    assert set(result["timings_s"]) >= {"split", "detect", "merge"}
    assert Path(result["detections_file"]).is_file()
    assert json.loads(capsys.readouterr().out)["tps"] == result["tps"]


def test_analyze_an_imported_slide_by_id(synthetic_slide, tmp_path):
    out = tmp_path / "r.json"
    call_command("analyze_slide", str(synthetic_slide.pk), "--detector", "classic", "--json", str(out),
                 "--no-progress")
    assert json.loads(out.read_text())["slide"] == synthetic_slide.pk


@pytest.mark.parametrize("make,args,message", [
    (lambda tmp: tmp / "missing.svs", [], "no such file"),
    (lambda tmp: _write(tmp / "notes.svs", b"not a slide" * 100), [], "not a readable .svs slide"),
    (lambda tmp: shared_slide("sm_image_jpegls.dcm"), [], "Unsupported transfer syntax"),
    (lambda tmp: _png(tmp / "field.png"), [], "no resolution"),
    (lambda tmp: _png(tmp / "white.png"), ["--mpp", "0.5"], "no tissue found"),
    (lambda tmp: _png(tmp / "x.png"), ["--mpp", "-1"], "positive number"),
    (lambda tmp: _png(tmp / "y.png"), ["--mpp", "0.5", "--workers", "0"], "at least 1"),
    (lambda tmp: _png(tmp / "z.png"), ["--mpp", "0.5", "--detector", "no-such-model"], "no-such-model"),
])
def test_bad_input_gives_a_clear_error(tmp_path, make, args, message):
    path = make(tmp_path)
    with pytest.raises(CommandError, match=message):
        call_command("analyze_slide", str(path), "--json", str(tmp_path / "out.json"), "--no-progress", *args)
    assert not (tmp_path / "out.json").exists()


def _write(path, data):
    path.write_bytes(data)
    return path


def _png(path):
    from PIL import Image

    Image.new("RGB", (256, 256), (250, 250, 250)).save(path)
    return path


@pytest.mark.slow
def test_two_worker_processes_give_the_same_result_as_one(synthetic_slide_file, tmp_path):
    """Real processes on a file database, as a user runs it: --workers 2 forks detect processes."""
    results = []
    for workers in ("1", "2"):
        var = tmp_path / f"var{workers}"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(DJANGO_SETTINGS_MODULE="pdl1site.settings", SECRET_KEY="k", PDL1_VAR_DIR=str(var))
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        out = tmp_path / f"out{workers}.json"
        run = subprocess.run([sys.executable, "manage.py", "analyze_slide", synthetic_slide_file.path, "--detector",
                              "classic", "--workers", workers, "--batch-size", "2", "--json", str(out)],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        results.append(json.loads(out.read_text()))
    assert results[0]["counts"] == results[1]["counts"] and results[0]["tiles"] == results[1]["tiles"]
    from analysis.detection_store import open_store

    a, b = (open_store(r["detections_file"]) for r in results)
    qa, qb = (s.query(0, 0, 1536, 1536) for s in (a, b))
    order = lambda q: np.lexsort((q.xy[:, 1], q.xy[:, 0]))  # noqa: E731
    np.testing.assert_array_equal(qa.xy[order(qa)], qb.xy[order(qb)])


def test_missing_file_exits_non_zero_without_traceback(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    run = subprocess.run([sys.executable, "manage.py", "analyze_slide", str(tmp_path / "nope.svs"), "--json",
                          str(tmp_path / "o.json")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "no such file" in run.stderr and "Traceback" not in run.stderr
