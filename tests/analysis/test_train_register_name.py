"""`train_detector --register NAME` checks NAME before training (issue: the checks ran only after the
run, hours on a GPU, whose model then stayed unregistered)."""

import pytest
from django.core.management import CommandError, call_command

from tests.analysis.test_registry import ModelVersionFactory

pytestmark = pytest.mark.django_db

TINY = ["--source", "synthetic", "--steps", "1", "--batch-size", "1", "--crop", "64", "--synthetic-fields", "1",
        "--synthetic-val", "1", "--synthetic-size", "96", "--no-progress", "--device", "cpu"]


@pytest.mark.parametrize("name, message", [
    ("lung v2", "must be a slug"),
    ("lung/v2", "must be a slug"),
    ("x" * 200, "at most"),
    ("classic", "reserved for the classic pipeline"),
    ("taken-v1", "already registered under this name"),
])
def test_a_name_that_cannot_be_registered_is_refused_before_training(tmp_path, name, message):
    ModelVersionFactory(name="taken-v1")
    out = tmp_path / "out"
    with pytest.raises(CommandError, match=f"--register .*{message}"):
        call_command("train_detector", *TINY, "--out", str(out), "--register", name)
    assert not out.exists()  # training never started: it writes its folder before the first step


def test_a_free_name_trains_and_registers(tmp_path, media_root):
    from analysis.models import ModelVersion

    call_command("train_detector", *TINY, "--out", str(tmp_path / "out"), "--register", "free-v1")
    assert ModelVersion.objects.get(name="free-v1").status == "research"
