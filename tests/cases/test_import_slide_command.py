"""`manage.py import_slide`: JSON on success; a clear message and a non-zero exit on bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cases.models import Slide
from tests.conftest import shared_slide, stored_files

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_import_prints_the_slide_as_json(capsys, personas):
    call_command("import_slide", str(shared_slide("test3-DAPI-2-387.ndpi")), "--case", personas["case"].accession,
                 "--user", "pathologist")
    data = json.loads(capsys.readouterr().out)
    slide = Slide.objects.get()
    assert data["id"] == slide.pk and data["format"] == "hamamatsu" and data["level_count"] == 7
    assert data["case"] == personas["case"].pk and data["duplicate"] is False
    assert slide.uploaded_by == personas["pathologist"]


def test_import_with_mpp_for_a_file_without_one(capsys):
    call_command("import_slide", str(shared_slide("boxes.tiff")), "--mpp", "0.5")
    assert json.loads(capsys.readouterr().out)["mpp_x"] == 0.5


def test_import_of_a_dicom_folder(capsys, tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "sm_image.dcm").write_bytes(shared_slide("sm_image.dcm").read_bytes())
    call_command("import_slide", str(folder))
    assert json.loads(capsys.readouterr().out)["format"] == "dicom"


def test_second_import_reports_the_duplicate(capsys):
    call_command("import_slide", str(shared_slide("small.svs")))
    first = json.loads(capsys.readouterr().out)
    call_command("import_slide", str(shared_slide("small.svs")))
    second = json.loads(capsys.readouterr().out)
    assert second["duplicate"] is True and second["id"] == first["id"] and Slide.objects.count() == 1


@pytest.mark.parametrize("args,message", [
    (["/nonexistent/x.svs"], "no such file"),
    ([str(shared_slide("sm_image_jpegls.dcm"))], "Unsupported transfer syntax"),
    ([str(shared_slide("small.svs")), "--case", "NOPE"], "no case"),
    ([str(shared_slide("small.svs")), "--mpp", "-1"], "plausible"),
    ([str(shared_slide("small.svs")), "--user", "ghost"], "no user"),
])
def test_bad_input_raises_a_command_error_and_stores_nothing(media_root, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("import_slide", *args)
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_exit_code_and_no_traceback_in_a_real_process(tmp_path):
    """The shell sees a non-zero status and one readable line, not a Python traceback."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PDL1_VAR_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    empty = tmp_path / "empty.svs"
    empty.write_bytes(b"")
    result = subprocess.run([sys.executable, "manage.py", "import_slide", str(empty)], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "empty" in result.stderr and "Traceback" not in result.stderr
