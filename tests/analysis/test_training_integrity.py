"""A training run's record is the run that took place.

- a resume continues the same run: every config key but the few that may change (RESUME_MAY_CHANGE), and the
  fields with their splits, images and points, as the checkpoint recorded them (issue: only the source specs and
  a few keys were compared, so a field trained on before the interruption could be carded as held out, and other
  hyperparameters were carded as if the whole run had used them);
- a model fine-tuned from weights that learnt from SYNTHETIC images or under a licence stays SYNTHETIC and
  bound by it (issue: fine-tuning the shipped starter dropped both);
- `train_detector --register` registers a finished run only (issue: a run stopped by --max-minutes took the name);
- checkpoints, models and cards are written whole or not at all. Data: SYNTHETIC and random test images.
"""

import json

import numpy as np
import pytest
import torch
from django.core.management import call_command
from skimage import io

from analysis import registry
from analysis.loss import LossWeights
from analysis.training import train
from analysis.training_card import card_markdown, lineage_of
from analysis.training_config import TrainConfig, TrainingError

TINY = dict(sources=("synthetic",), backbone="resnet18", steps=4, batch_size=2, crop=64, synthetic_train=3,
            synthetic_val=1, synthetic_size=96, checkpoint_every=2, warmup_steps=2, progress=False, device="cpu")


@pytest.fixture(autouse=True, scope="module")
def few_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _field(root, fid, split, seed=0):
    rng = np.random.default_rng(seed + sum(map(ord, fid)))
    io.imsave(root / f"{fid}.png", rng.integers(0, 255, (96, 96, 3), dtype=np.uint8), check_contrast=False)
    (root / f"{fid}.csv").write_text("x,y,label\n20,20,positive\n60,50,negative\n")
    return {"id": fid, "image": f"{fid}.png", "points": f"{fid}.csv", "mpp": 0.5, "split": split}


def _manifest(root, splits, seeds=None):
    root.mkdir(parents=True, exist_ok=True)
    fields = [_field(root, fid, split, (seeds or {}).get(fid, 0)) for fid, split in splits.items()]
    (root / "manifest.json").write_text(json.dumps({"format": "pdl1-point-dataset", "version": 1,
                                                    "licence": "internal", "fields": fields}))


# ---------------------------------------------------------------------------- resume: same data


def test_a_resume_on_changed_fields_is_refused_naming_each_change(tmp_path):
    data = tmp_path / "data"
    _manifest(data, {"a": "train", "b": "train", "c": "val"})
    config = dict(TINY, sources=(f"folder:{data}",))
    out = str(tmp_path / "run")
    train(TrainConfig(out_dir=out, stop_at_step=2, **config))
    # The folder re-exported in place: b moved to the held-out split, a's image changed, d is new.
    _manifest(data, {"a": "train", "b": "val", "c": "val", "d": "train"}, seeds={"a": 1})
    with pytest.raises(TrainingError, match="training data changed") as refused:
        train(TrainConfig(out_dir=out, resume=True, **config))
    message = str(refused.value)
    assert f"folder:{data} field b: split train -> val" in message
    assert f"folder:{data} field a (train): image or points changed" in message
    assert f"folder:{data} field d (train): new" in message
    # As it was, the run goes on.
    _manifest(data, {"a": "train", "b": "train", "c": "val"})
    result = train(TrainConfig(out_dir=out, resume=True, **config))
    assert result.finished and result.card["training_data"]["sources"][0]["train_fields"] == ["a", "b"]


def test_a_points_change_is_a_data_change(tmp_path):
    data = tmp_path / "data"
    _manifest(data, {"a": "train", "c": "val"})
    config = dict(TINY, sources=(f"folder:{data}",))
    out = str(tmp_path / "run")
    train(TrainConfig(out_dir=out, stop_at_step=2, **config))
    (data / "a.csv").write_text("x,y,label\n20,20,negative\n60,50,negative\n")
    with pytest.raises(TrainingError, match="field a \\(train\\): image or points changed"):
        train(TrainConfig(out_dir=out, resume=True, **config))


# ---------------------------------------------------------------------------- resume: same configuration


def test_a_resume_with_other_hyperparameters_is_refused_naming_each(tmp_path):
    out = str(tmp_path / "run")
    train(TrainConfig(out_dir=out, stop_at_step=2, name="r1", **TINY))
    changed = dict(TINY, lr=5e-2, weight_decay=0.5, warmup_steps=0, background_weight=0.0, point_radius_um=0.0,
                   stain_sigma=0.5, scale_jitter=0.5, loss_weights=LossWeights(point=1.0, false_positive=0.0))
    with pytest.raises(TrainingError, match="cannot resume: checkpoint has ") as refused:
        train(TrainConfig(out_dir=out, resume=True, name="r2", **changed))
    message = str(refused.value)
    for text in ("name='r1', now 'r2'", "lr=0.0005, now 0.05", "weight_decay=0.0001, now 0.5",
                 "warmup_steps=2, now 0", "background_weight=20.0, now 0.0", "point_radius_um=1.5, now 0.0",
                 "stain_sigma=0.05, now 0.5", "scale_jitter=0.0, now 0.5", "loss_weights="):
        assert text in message
    with pytest.raises(TrainingError, match="checkpoint has background_radius_um=7.0, now 5.0"):
        train(TrainConfig(out_dir=out, resume=True, name="r1", **dict(TINY, background_radius_um=5.0)))
    with pytest.raises(TrainingError, match="checkpoint has stain_bias=0.05, now 0.1"):
        train(TrainConfig(out_dir=out, resume=True, name="r1", **dict(TINY, stain_bias=0.1)))


def test_a_resume_may_change_steps_and_the_card_says_so(tmp_path):
    out = str(tmp_path / "run")
    train(TrainConfig(out_dir=out, stop_at_step=2, name="r1", **TINY))
    longer = dict(TINY, steps=6, checkpoint_every=3, val_every=3)
    result = train(TrainConfig(out_dir=out, resume=True, name="r1", **longer))
    assert result.finished and result.steps_done == 6
    resumes = result.card["training"]["resumes"]
    assert resumes == [{"at_step": 2, "changed": {"steps": [4, 6]}}]  # how a call slices and reports: not recorded
    assert "Resumed: at step 2 (steps 4 -> 6)" in result.card_path.read_text()
    # The history stays in the checkpoint: a later resume adds to it.
    again = train(TrainConfig(out_dir=out, resume=True, name="r1", **dict(longer, steps=7)))
    assert [r["at_step"] for r in again.card["training"]["resumes"]] == [2, 6]
    assert again.card["training"]["resumes"][1]["changed"] == {"steps": [6, 7]}


def test_a_checkpoint_without_a_data_fingerprint_is_not_resumed(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(out_dir=str(out), stop_at_step=2, **TINY))
    state = torch.load(out / "last.pt", weights_only=True)
    del state["data"]  # as written before fingerprints
    torch.save(state, out / "last.pt")
    with pytest.raises(TrainingError, match="predates data fingerprints"):
        train(TrainConfig(out_dir=str(out), resume=True, **TINY))


# ---------------------------------------------------------------------------- fine-tuning keeps SYNTHETIC and licences


def test_a_model_fine_tuned_from_a_synthetic_parent_stays_synthetic_and_keeps_its_licences(tmp_path):
    from analysis.models import ModelVersion

    parent = train(TrainConfig(out_dir=str(tmp_path / "parent"), name="parent", **TINY))
    assert parent.card["training_data"]["synthetic"] is True
    data = tmp_path / "data"
    _manifest(data, {"a": "train", "b": "train", "c": "val"})
    child = train(TrainConfig(out_dir=str(tmp_path / "child"), name="child", init_from=str(parent.model_path),
                              **dict(TINY, sources=(f"folder:{data}",))))
    td = child.card["training_data"]
    assert td["synthetic"] is True and td["lineage"]["synthetic"] is True
    assert ModelVersion(name="child", training_data=td).synthetic  # the model list, detector choices, the PDF
    assert td["lineage"]["licences"] == [{"model": "parent", "source": "synthetic", "synthetic": True,
                                          "licence": parent.card["training_data"]["sources"][0]["licence"]}]
    assert not td["lineage"]["unchecked"]
    md = child.card_path.read_text()
    assert "**Includes SYNTHETIC images** through the weights it started from (parent)" in md
    assert "| parent | synthetic | SYNTHETIC | generated by analysis.synthetic" in md
    # And the grandchild inherits both through the child's card.
    grandchild = train(TrainConfig(out_dir=str(tmp_path / "grand"), name="grand", init_from=str(child.model_path),
                                   **dict(TINY, sources=(f"folder:{data}",))))
    lineage = grandchild.card["training_data"]["lineage"]
    assert grandchild.card["training_data"]["synthetic"] is True
    assert [(e["model"], e["source"]) for e in lineage["licences"]] == [("child", f"folder:{data}"),
                                                                        ("parent", "synthetic")]


def test_the_shipped_starters_synthetic_label_and_non_commercial_licence_pass_to_a_fine_tune():
    card = json.loads(registry.STARTER_CARD.read_text())
    lineage = lineage_of(str(registry.STARTER_FILE), card)
    assert lineage.synthetic
    licences = {e["source"]: e["licence"] for e in lineage.licences}
    assert "non-commercial" in licences["deepliif"] and "SYNTHETIC" in licences["synthetic"]
    assert all(e["model"] == card["name"] for e in lineage.licences)


def test_the_card_of_an_own_synthetic_source_says_so_without_a_parent():
    card = {"name": "x", "created": "t", "torch_version": "2", "working_mpp": 0.5,
            "architecture": {"arch": "fcn", "backbone": "resnet18", "class_names": ["bg", "pos", "neg"]},
            "normalisation": {"mean": [0], "std": [1]},
            "training": {"steps": 1, "finished": True, "planned_steps": 1, "batch_size": 1, "crop": 64, "lr": 1,
                         "seed": 0, "seconds": 1, "device": "cpu", "augmentation": "", "initialised_from": None},
            "training_data": {"sources": [{"source": "synthetic", "synthetic": True, "licence": "gen",
                                           "fields": {"train": 1}, "points": {}}], "synthetic": True,
                              "lineage": lineage_of(None, None).to_dict()},
            "evaluation": {"match_radius_um": 4, "nms_radius_um": 3}, "metrics": {}}
    md = card_markdown(card)
    assert "**Includes SYNTHETIC images** (analysis.synthetic)" in md and "Inherited" not in md


# ---------------------------------------------------------------------------- --register registers a finished run only

COMMAND = ["--source", "synthetic", "--steps", "50", "--batch-size", "2", "--crop", "64", "--synthetic-fields", "3",
           "--synthetic-val", "1", "--synthetic-size", "96", "--device", "cpu", "--no-progress"]


@pytest.mark.django_db
def test_a_run_stopped_by_max_minutes_is_not_registered_and_its_resume_is(tmp_path, media_root, capsys):
    from analysis.models import ModelVersion

    out = tmp_path / "run"
    call_command("train_detector", *COMMAND, "--out", str(out), "--max-minutes", "0.0001", "--register", "part-v1")
    assert json.loads((out / "model_card.json").read_text())["training"]["finished"] is False
    assert not ModelVersion.objects.filter(name="part-v1").exists()
    err = capsys.readouterr().err
    assert "not finished, so not registered as part-v1" in err and "--resume" in err
    call_command("train_detector", *COMMAND, "--out", str(out), "--resume", "--register", "part-v1")
    version = ModelVersion.objects.get(name="part-v1")
    assert version.training_data["sources"][0]["fields"] == {"train": 3, "val": 1}
    assert json.loads(version.path().with_suffix(".json").read_text())["training"]["finished"] is True


# ---------------------------------------------------------------------------- whole-file writes


def test_two_checkpoint_saves_use_temporaries_of_their_own(tmp_path, monkeypatch):
    import analysis.atomic as atomic
    from analysis.training_checkpoint import save_state

    temporaries = []
    real_replace = atomic.os.replace

    def spy(src, dst):
        temporaries.append(src)
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    config = TrainConfig(out_dir=str(tmp_path))
    save_state(tmp_path / "last.pt", 1, model, optimizer, config, {"fields": {}})
    save_state(tmp_path / "last.pt", 2, model, optimizer, config, {"fields": {}})
    assert len(set(temporaries)) == 2 and all(str(tmp_path) in t for t in temporaries)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 2


def test_a_crash_while_writing_the_model_keeps_the_previous_model_whole(tmp_path, monkeypatch):
    import analysis.nets as nets

    out = tmp_path / "run"
    first = train(TrainConfig(out_dir=str(out), **TINY))
    before = first.model_path.read_bytes()
    real_save = nets.save_checkpoint

    def killed_midway(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        with open(path, "r+b") as fh:  # what a kill during torch.save leaves: a cut-short file
            fh.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(nets, "save_checkpoint", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out_dir=str(out), resume=True, **dict(TINY, steps=5)))
    assert first.model_path.read_bytes() == before
    assert not list(out.glob(".*.tmp"))
