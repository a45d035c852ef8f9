"""`manage.py analyze_slide` refuses bad arguments before it stores the slide: a refusal leaves no slide,
no job and no file behind (it used to leave a slide in no case, or to fail writing after a whole analysis)."""

import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analysis.models import AnalysisJob
from cases.models import Slide
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db(transaction=True)


def _png(path):
    from PIL import Image

    Image.new("RGB", (256, 256), (250, 250, 250)).save(path)
    return path


def _nothing_stored(media_root):
    assert not Slide.objects.exists() and not AnalysisJob.objects.exists()
    assert stored_files(media_root) == []


@pytest.mark.parametrize("args,message", [
    (["--mpp", "0.5", "--batch-size", "0"], "batch_size must be a whole number from 1 to 256"),
    (["--mpp", "0.5", "--batch-size", "-5"], "batch_size must be a whole number"),
    (["--mpp", "0.5", "--detector", "nosuch"], "nosuch"),
    (["--mpp", "0.5", "--workers", "-1"], "at least 1"),
    (["--mpp", "1000"], "mpp must be a number"),
])
def test_bad_job_arguments_are_refused_before_the_slide_is_stored(tmp_path, media_root, args, message):
    image = _png(tmp_path / "field.png")
    out = tmp_path / "out.json"
    with pytest.raises(CommandError, match=message):
        call_command("analyze_slide", str(image), "--json", str(out), "--no-progress", *args)
    _nothing_stored(media_root)
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--json", "--report"])
def test_an_output_in_a_missing_folder_is_refused_before_any_work(tmp_path, media_root, flag):
    image = _png(tmp_path / "field.png")
    paths = {"--json": str(tmp_path / "out.json"), "--report": None}
    paths[flag] = str(tmp_path / "nonexistent" / "dir" / "o.out")
    args = ["--json", paths["--json"]] + (["--report", paths["--report"]] if paths["--report"] else [])
    with pytest.raises(CommandError, match=f"{flag} .*the folder .* does not exist"):
        call_command("analyze_slide", str(image), "--mpp", "0.5", "--detector", "classic", "--no-progress", *args)
    _nothing_stored(media_root)


def test_an_output_that_is_a_folder_is_refused(tmp_path, media_root):
    image = _png(tmp_path / "field.png")
    with pytest.raises(CommandError, match="is a folder"):
        call_command("analyze_slide", str(image), "--mpp", "0.5", "--json", str(tmp_path), "--no-progress")
    _nothing_stored(media_root)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_an_output_in_a_read_only_folder_is_refused(tmp_path, media_root):
    image = _png(tmp_path / "field.png")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(CommandError, match="not writable"):
            call_command("analyze_slide", str(image), "--mpp", "0.5", "--json", str(locked / "o.json"), "--no-progress")
    finally:
        locked.chmod(0o700)
    _nothing_stored(media_root)


def test_a_refusal_that_needs_the_stored_slide_removes_the_slide_it_stored(tmp_path, media_root):
    """No resolution is known only once the file is read: the slide stored for the job goes again."""
    image = _png(tmp_path / "field.png")
    with pytest.raises(CommandError, match="no resolution"):
        call_command("analyze_slide", str(image), "--json", str(tmp_path / "out.json"), "--no-progress")
    _nothing_stored(media_root)


def test_a_refusal_that_needs_the_stored_slide_keeps_a_slide_imported_before(synthetic_slide, tmp_path, settings):
    settings.PDL1_JOB_MAX_TILES = 1
    with pytest.raises(CommandError, match="tiles, more than the limit"):
        call_command("analyze_slide", str(synthetic_slide.pk), "--detector", "classic", "--json",
                     str(tmp_path / "o.json"), "--no-progress")
    assert Slide.objects.filter(pk=synthetic_slide.pk).exists()
    assert (settings.MEDIA_ROOT / synthetic_slide.file.name).is_file()


def test_a_job_that_ran_and_failed_keeps_its_slide(tmp_path):
    """Not a refusal: the job is the record of the failed analysis, and it refers to the slide."""
    image = _png(tmp_path / "white.png")
    with pytest.raises(CommandError, match="no tissue found"):
        call_command("analyze_slide", str(image), "--mpp", "0.5", "--json", str(tmp_path / "o.json"), "--no-progress")
    assert Slide.objects.count() == 1 and AnalysisJob.objects.count() == 1
