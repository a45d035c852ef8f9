"""A training run records its dataset folder relative to MEDIA_ROOT, so a restore into another media folder
keeps it; runs recorded before with an absolute path under the old MEDIA_ROOT still find their export."""

import shutil

import pytest

from tests.workers.synthetic_dataset import write_synthetic_dataset
from workers import training
from workers.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    monkeypatch.setattr("django_q.tasks.async_task", lambda *args, **kwargs: "t-1")


def trained_on(monkeypatch, run) -> str:
    """The dataset source the run's task hands to the trainer (the trainer itself is not run)."""
    seen = []

    def train(config, monitor=None):
        seen.append(config.sources)
        raise RuntimeError("not trained in this test")

    monkeypatch.setattr("analysis.training.train", train)
    assert training.run_training(run.pk) == "failed"
    [sources] = seen
    return sources[0]


def _queue(folder, name="path-run"):
    return training.do_queue_training(group="g", dataset=str(folder), name=name, steps=3, backbone="resnet18", mpp=0.5)


def test_an_export_under_media_root_is_recorded_relative_and_found_after_a_restore_elsewhere(
        settings, tmp_path, monkeypatch):
    export = write_synthetic_dataset(settings.MEDIA_ROOT / "datasets" / "export-1")
    run = _queue(export)
    assert run.dataset == "datasets/export-1"
    restored = tmp_path / "restored-media"
    shutil.copytree(settings.MEDIA_ROOT, restored)
    shutil.rmtree(settings.MEDIA_ROOT)
    settings.MEDIA_ROOT = restored
    assert trained_on(monkeypatch, run) == f"folder:{restored / 'datasets' / 'export-1'}"


def test_a_media_root_reached_through_a_link_is_recorded_relative(settings, tmp_path):
    link = tmp_path / "media-link"
    link.symlink_to(settings.MEDIA_ROOT)
    export = write_synthetic_dataset(settings.MEDIA_ROOT / "datasets" / "export-2")
    settings.MEDIA_ROOT = link
    assert _queue(export).dataset == "datasets/export-2"


def test_a_folder_outside_media_root_is_kept_absolute(settings, tmp_path, monkeypatch):
    folder = write_synthetic_dataset(tmp_path / "elsewhere" / "datasets" / "mine")
    run = _queue(folder)
    assert run.dataset == str(folder)
    assert trained_on(monkeypatch, run) == f"folder:{folder}"


def test_an_old_absolute_row_under_a_media_root_now_gone_finds_the_restored_export(settings, tmp_path, monkeypatch):
    write_synthetic_dataset(settings.MEDIA_ROOT / "datasets" / "export-3")
    run = TrainingRun.objects.create(group="g", dataset=str(tmp_path / "old-media" / "datasets" / "export-3"),
                                     name="old-run", steps_total=3, backbone="resnet18", mpp=0.5)
    assert trained_on(monkeypatch, run) == f"folder:{settings.MEDIA_ROOT / 'datasets' / 'export-3'}"


def test_an_old_absolute_row_that_still_exists_is_used_as_recorded(settings, monkeypatch):
    export = write_synthetic_dataset(settings.MEDIA_ROOT / "datasets" / "export-4")
    run = TrainingRun.objects.create(group="g", dataset=str(export), name="old-run", steps_total=3,
                                     backbone="resnet18", mpp=0.5)
    assert trained_on(monkeypatch, run) == f"folder:{export}"
