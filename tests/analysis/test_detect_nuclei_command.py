"""`manage.py detect_nuclei`: CSV + QuPath GeoJSON in full-image pixels; one clear error line on bad input."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from analysis.labels import LABEL_RGB, NEGATIVE, POSITIVE
from analysis.synthetic import render_field

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synthetic_field():
    return render_field(size=(192, 224), mpp=0.5, seed=11)


@pytest.fixture
def png(tmp_path, synthetic_field):
    path = tmp_path / "field.png"
    Image.fromarray(synthetic_field.rgb).save(path)
    return path


def read_csv(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [(float(x), float(y), label, float(s)) for x, y, label, s in rows[1:]]


def test_classic_writes_csv_and_qupath_geojson(tmp_path, png, synthetic_field):
    out, geo = tmp_path / "points.csv", tmp_path / "points.geojson"
    call_command("detect_nuclei", str(png), "--mpp", "0.5", "--detector", "classic", "--out", str(out),
                 "--geojson", str(geo))
    header, rows = read_csv(out)
    assert header == ["x", "y", "label", "score"]
    assert len(rows) >= 0.7 * len(synthetic_field.points)
    assert all(0 <= x < 224 and 0 <= y < 192 and label in ("positive", "negative") for x, y, label, _ in rows)
    data = json.loads(geo.read_text())
    assert data["type"] == "FeatureCollection" and len(data["features"]) == len(rows)
    colours = {"Positive": list(LABEL_RGB[POSITIVE]), "Negative": list(LABEL_RGB[NEGATIVE])}  # the one vocabulary
    for feature, (x, y, label, score) in zip(data["features"], rows):
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
        assert feature["geometry"]["coordinates"] == pytest.approx([x, y], abs=0.01)
        props = feature["properties"]
        assert props["objectType"] == "detection"
        assert props["classification"] == {"name": label.capitalize(), "color": colours[label.capitalize()]}
        assert props["measurements"]["score"] == pytest.approx(score, abs=1e-3)


def test_region_offsets_are_added_back(tmp_path, png):
    full, part = tmp_path / "full.csv", tmp_path / "part.csv"
    call_command("detect_nuclei", str(png), "--mpp", "0.5", "--detector", "classic", "--out", str(full))
    call_command("detect_nuclei", str(png), "--mpp", "0.5", "--detector", "classic", "--out", str(part),
                 "--region", "64,48,128,112")
    _, all_rows = read_csv(full)
    _, rows = read_csv(part)
    assert rows and all(64 <= x < 192 and 48 <= y < 160 for x, y, _, _ in rows)
    # Nuclei well inside the region are found at the same full-image place either way.
    inner = [(x, y) for x, y, _, _ in rows if 80 < x < 176 and 64 < y < 144]
    ref = np.array([(x, y) for x, y, _, _ in all_rows])
    assert inner and all(np.linalg.norm(ref - p, axis=1).min() < 1.5 for p in inner)


def test_stored_mpp_is_used_and_overridable(tmp_path):
    import tifffile

    rgb = render_field(size=(96, 96), mpp=0.5, seed=5).rgb
    path = tmp_path / "f.ome.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", metadata={"axes": "YXS", "PhysicalSizeX": 0.5,
                                                            "PhysicalSizeY": 0.5})
    call_command("detect_nuclei", str(path), "--detector", "classic", "--out", str(tmp_path / "a.csv"))
    call_command("detect_nuclei", str(path), "--detector", "classic", "--mpp", "0.5", "--out",
                 str(tmp_path / "b.csv"))
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def make(tmp_path, kind):
    path = tmp_path / "in.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello")
    elif kind == "gray":
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(path)
    elif kind == "rgba":
        Image.fromarray(np.zeros((40, 40, 4), np.uint8)).save(path)
    elif kind == "tiny":
        Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(path)
    else:
        Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(path)
    return path


@pytest.mark.parametrize("kind, extra, message", [
    ("empty", [], "empty"),
    ("text", [], "not an image"),
    ("gray", [], "single-channel"),
    ("rgba", [], "alpha"),
    ("tiny", [], "too small"),
    ("ok", ["--region", "40,0,20,20"], "outside"),
    ("ok", ["--region", "0,0,0,20"], "positive"),
    ("ok", ["--region", "0,0,20"], "four integers"),
    ("ok", ["--mpp", "0"], "positive finite"),
    ("ok", ["--mpp", "-1"], "positive finite"),
    ("ok", ["--mpp", "nan"], "positive finite"),
    ("ok", ["--mpp", "inf"], "positive finite"),
    ("ok", ["--mpp", "x"], "must be a number"),
    ("ok", ["--mpp", None], "give --mpp"),
    ("ok", ["--detector", "no-such-model"], "unknown detector"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, kind, extra, message):
    tmp_path = tmp_path / "work"  # apart from the media folder of conftest
    tmp_path.mkdir()
    args = [str(make(tmp_path, kind)), "--detector", "classic", "--out", str(tmp_path / "x.csv"),
            "--geojson", str(tmp_path / "x.geojson")]
    if "--detector" in extra:
        args = args[:1] + args[3:]
    if extra[:1] != ["--mpp"]:
        args += ["--mpp", "0.5"]
    args += [a for a in extra if a is not None]
    if extra == ["--mpp", None]:
        args = args[:-1]
    with pytest.raises(CommandError, match=message):
        call_command("detect_nuclei", *args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_exit_code_and_no_traceback_in_a_real_process(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PDL1_VAR_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    env.pop("REDIS_URL", None)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    result = subprocess.run([sys.executable, "manage.py", "detect_nuclei", str(empty), "--mpp", "0.5",
                             "--out", str(tmp_path / "x.csv")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "empty" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.csv").exists()
