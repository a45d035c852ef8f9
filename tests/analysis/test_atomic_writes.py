"""Files written whole or not at all (analysis.atomic), and the card copy of registered weights: written whole,
never replaced by another (issue: it was written in place, and one already there was kept, cut short or not)."""

import json

import pytest

from analysis import registry


def test_a_write_that_fails_before_its_replace_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    import analysis.atomic as atomic

    (tmp_path / "run").mkdir()
    target = tmp_path / "run" / "card.json"
    atomic.write_text_atomically(target, "old")

    def crash(src, dst):
        raise OSError("killed between write and replace")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        atomic.write_text_atomically(target, "new, longer contents")
    assert target.read_text() == "old" and [p.name for p in target.parent.iterdir()] == ["card.json"]



@pytest.mark.django_db
def test_a_registered_card_copy_is_written_whole_and_never_replaced_by_another(tmp_path, media_root):
    from tests.analysis.test_registry import tiny_checkpoint

    out = tmp_path / "run"
    out.mkdir()
    tiny_checkpoint(out / "model.pt")
    (out / "model_card.json").write_text(json.dumps({"metrics": {"x": 1}, "training_data": {"synthetic": False}}))
    digest = registry.sha256_file(out / "model.pt")
    folder = media_root / "models" / "card-v1"
    folder.mkdir(parents=True)
    (folder / f"{digest[:16]}.json").write_text('{"metrics": {"x"')  # a copy cut short by an earlier crash
    with pytest.raises(registry.RegistryError, match="exists with another card"):
        registry.register_checkpoint(out / "model.pt", "card-v1")
    assert not (folder / f"{digest[:16]}.pt").exists()  # no weights left without their card
    (folder / f"{digest[:16]}.json").unlink()
    version = registry.register_checkpoint(out / "model.pt", "card-v1")
    copy = version.path().with_suffix(".json")
    assert json.loads(copy.read_text())["metrics"] == {"x": 1} and not copy.stat().st_mode & 0o222
    assert not list(folder.glob(".*.tmp"))
