"""Training loop, resumable checkpoints, the train_detector command and dataset sources."""

import json

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command
from skimage import io

from analysis import datasets, registry
from analysis.models import ActiveModel, ModelVersion
from analysis.training import train
from analysis.training_config import TrainConfig, TrainingError

TINY = dict(sources=("synthetic",), backbone="resnet18", steps=4, batch_size=2, crop=64, synthetic_train=3,
            synthetic_val=1, synthetic_size=96, checkpoint_every=2, warmup_steps=2, progress=False)


@pytest.fixture(autouse=True, scope="module")
def few_threads():
    # Bit-identical resume needs the same reduction order: one fixed thread count for
    # every run here (module scope, so it also covers the module-scoped tiny_run).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return train(TrainConfig(out_dir=str(out), name="tiny", **TINY))


def test_tiny_run_writes_model_checkpoint_and_card(tiny_run):
    from analysis.nets import load_checkpoint

    assert tiny_run.finished and tiny_run.steps_done == 4
    assert tiny_run.checkpoint_path.is_file() and tiny_run.model_path.is_file()
    model, config, extra = load_checkpoint(tiny_run.model_path)
    assert (config.arch, config.backbone, config.mpp, extra["steps"]) == ("fcn", "resnet18", 0.5, 4)
    card = json.loads(tiny_run.card_json_path.read_text())
    assert card["torch_version"] == torch.__version__ and card["training"]["steps"] == 4
    assert card["training_data"]["synthetic"] is True
    assert card["training_data"]["sources"][0]["fields"] == {"train": 3, "val": 1}
    assert set(card["metrics"]["synthetic"]["per_class"]) == {"positive", "negative"}
    md = tiny_run.card_path.read_text()
    assert "SYNTHETIC" in md and "0.5 µm/px" in md and "fcn / resnet18" in md


def test_resume_reaches_the_same_weights(tiny_run, tmp_path):
    config = dict(TINY, synthetic_val=0)
    stopped = train(TrainConfig(out_dir=str(tmp_path), stop_at_step=2, **config))
    assert not stopped.finished and stopped.steps_done == 2
    resumed = train(TrainConfig(out_dir=str(tmp_path), resume=True, **config))
    assert resumed.finished and resumed.steps_done == 4
    full = torch.load(tiny_run.checkpoint_path, weights_only=True)
    again = torch.load(resumed.checkpoint_path, weights_only=True)
    assert full["step"] == again["step"] == 4
    for key, value in full["model"].items():
        assert torch.equal(value, again["model"][key]), key


def test_existing_checkpoint_needs_resume_and_same_config(tiny_run):
    out = str(tiny_run.model_path.parent)
    with pytest.raises(TrainingError, match="pass resume"):
        train(TrainConfig(out_dir=out, **TINY))
    with pytest.raises(TrainingError, match="cannot resume: checkpoint has crop=64, now 96"):
        train(TrainConfig(out_dir=out, resume=True, name="tiny", **dict(TINY, crop=96)))


@pytest.mark.parametrize("change, message", [({"crop": 60}, "multiple of 8"), ({"backbone": "vgg"}, "backbone"),
                                             ({"steps": 0}, "steps")])
def test_bad_config(tmp_path, change, message):
    with pytest.raises(TrainingError, match=message):
        train(TrainConfig(out_dir=str(tmp_path), **dict(TINY, **change)))


def test_source_weights_set_each_sources_share_of_a_batch():
    from types import SimpleNamespace

    from analysis.training_batches import make_batch

    def field(value):
        rgb = np.full((64, 64, 3), value, np.uint8)
        return SimpleNamespace(rgb=rgb, xy=np.zeros((0, 2), np.float32), labels=np.zeros(0, np.int64),
                               ignore_xy=np.zeros((0, 2)))

    pools = [[field(40)], [field(220)]]  # a dark and a light source, told apart by their pixels
    config = TrainConfig(out_dir="unused", crop=32, batch_size=400, stain_sigma=0.0, stain_bias=0.0,
                         sources=("a", "b"), source_weights=(3.0, 1.0))
    x, _, _ = make_batch(pools, config, np.random.default_rng(0))
    dark_share = float((x.mean(dim=(1, 2, 3)) < 0).float().mean())
    assert 0.68 < dark_share < 0.82  # 3:1 -> 75 %
    x, _, _ = make_batch(pools, TrainConfig(**{**config.__dict__, "source_weights": None}), np.random.default_rng(0))
    assert 0.4 < float((x.mean(dim=(1, 2, 3)) < 0).float().mean()) < 0.6  # equal shares by default
    with pytest.raises(TrainingError, match="source weights must be 2 positive numbers"):
        train(TrainConfig(**{**config.__dict__, "source_weights": (1.0,)}))


def test_resnet101_configuration_builds():
    # One training step of FCN-ResNet101 takes ~30 s on this CPU; it is trained on a GPU.
    from analysis.nets import build_detector_from_config
    from analysis.training_config import validate_config

    config = TrainConfig(out_dir="unused", backbone="resnet101", crop=64)
    validate_config(config)
    model = build_detector_from_config(config.detector_config())
    assert sum(p.numel() for p in model.parameters()) > 40_000_000


# ---------------------------------------------------------------------------- command


@pytest.mark.django_db
def test_command_trains_and_registers_for_research_only(tmp_path, media_root):
    """The server shell trains and registers; a model is released for clinical use and made a default only
    by its promotion (evaluated against the default, with a reason), never by this command."""
    call_command("train_detector", "--source", "synthetic", "--steps", "2", "--batch-size", "1", "--crop", "64",
                 "--synthetic-fields", "2", "--synthetic-val", "1", "--synthetic-size", "96", "--out", str(tmp_path / "out"), "--register", "cmd-v1",
                 "--no-progress", "--device", "cpu")
    version = ModelVersion.objects.get(name="cmd-v1")
    assert version.training_data["synthetic"] is True and "synthetic" in version.metrics
    assert version.sha256 == registry.sha256_file(tmp_path / "out" / "model.pt")  # stored as a copy
    assert version.status == "research" and not ActiveModel.objects.exists()
    with pytest.raises(CommandError):  # the option that released a model without a promotion is gone
        call_command("train_detector", "--source", "synthetic", "--out", str(tmp_path / "o2"), "--register", "cmd-v2",
                     "--activate", "lung_squamous:PD-L1")


@pytest.mark.django_db
@pytest.mark.parametrize("args, message", [
    (["--source", "bogus"], "unknown source"),
    (["--source", "db"], "db:MARKER"),
    (["--source", "db:PD-L1"], "no accepted annotation sessions"),
    (["--source", "folder:"], "needs a path"),
    (["--source", "synthetic", "--crop", "60"], "multiple of 8"),
    (["--source", "synthetic", "--source-weights", "1,1"], "give 1 positive numbers"),
    (["--source", "synthetic", "--source", "synthetic", "--source-weights", "1,0"], "positive numbers"),
    (["--source", "synthetic", "--source-weights", "nan"], "positive numbers"),
    (["--source", "synthetic", "--source-weights", "a"], "numbers separated by commas"),
    (["--source", "synthetic", "--point-weight", "-1"], r"loss weights must be numbers >= 0 \(point\)"),
    (["--source", "synthetic", "--point-weight", "nan"], "loss weights must be numbers >= 0"),
    (["--source", "synthetic", "--background-weight", "-2"], "background weight must be a number >= 0"),
    (["--source", "synthetic", "--background-radius-um", "0"], "background radius must be a positive"),
    (["--source", "synthetic", "--point-radius-um", "-1"], "point radius must be"),
    (["--source", "synthetic", "--lr", "0"], "lr must be a positive number"),
    (["--source", "synthetic", "--warmup-steps", "-1"], "warmup steps must be >= 0"),
    (["--source", "synthetic", "--max-minutes", "-5"], "max minutes must be a positive number"),
    (["--source", "synthetic", "--val-every", "-1"], "val_every must be >= 0"),
])
def test_command_bad_arguments(tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("train_detector", *args, "--out", str(tmp_path / "out"), "--steps", "1", "--no-progress")
    assert not (tmp_path / "out").exists()  # a bad argument leaves nothing behind


# ---------------------------------------------------------------------------- dataset folder


def write_folder(root, csv_text="x,y,label\n3,4,positive\n10.5,2,negative\n", mpp=0.25, split="train"):
    root.mkdir(parents=True, exist_ok=True)
    io.imsave(root / "f1.png", np.full((20, 30, 3), 180, np.uint8), check_contrast=False)
    (root / "f1.csv").write_text(csv_text)
    manifest = {"format": "pdl1-point-dataset", "version": 1, "name": "t",
                "fields": [{"id": "f1", "image": "f1.png", "points": "f1.csv", "mpp": mpp, "split": split}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_folder_loads_and_resamples_to_the_working_resolution(tmp_path):
    [sample] = datasets.folder_samples(write_folder(tmp_path / "d"))
    assert sample.labels.tolist() == [1, 2] and sample.split == "train" and not sample.synthetic
    half = datasets.resample(sample, 0.5)
    assert half.rgb.shape == (10, 15, 3)
    # Pixel-centre convention: x' = (x + 0.5) / 2 - 0.5.
    assert np.allclose(half.xy, [[1.25, 1.75], [5.0, 0.75]])


@pytest.mark.parametrize("csv_text, message", [
    ("col,row,class\n1,1,positive\n", "header line must be 'x,y,label'"),
    ("x,y,label\n1,1,positive\n2,2,tumour\n", "line 3: unknown label 'tumour'"),
    ("x,y,label\n1,1,positive\n35,2,negative\n", r"line 3: point \(35.0, 2.0\) outside the 30x20 image"),
    ("x,y,label\none,1,positive\n", "must be numbers"),
])
def test_folder_bad_points(tmp_path, csv_text, message):
    with pytest.raises(datasets.DatasetError, match=message):
        datasets.folder_samples(write_folder(tmp_path / "d", csv_text))


def test_folder_lists_every_problem(tmp_path):
    root = write_folder(tmp_path / "d", "x,y,label\n-3,1,positive\n2,2,maybe\n", mpp=None, split="holdout")
    with pytest.raises(datasets.DatasetError) as err:
        datasets.folder_samples(root)
    text = str(err.value)
    assert "4 problem(s)" in text and "split must be" in text and "mpp" in text
    assert "line 2: point" in text and "line 3: unknown label" in text


def test_folder_missing_manifest_and_files(tmp_path):
    with pytest.raises(datasets.DatasetError, match="no such folder"):
        datasets.folder_samples(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(datasets.DatasetError, match="missing manifest.json"):
        datasets.folder_samples(tmp_path / "empty")
    root = write_folder(tmp_path / "d")
    (root / "f1.png").unlink()
    with pytest.raises(datasets.DatasetError, match="image file 'f1.png' not found"):
        datasets.folder_samples(root)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(datasets.DatasetError, match="not valid JSON"):
        datasets.folder_samples(root)


def test_synthetic_source_is_labelled_and_splits_are_disjoint():
    train_ = datasets.synthetic_samples(2, "train", size=64)
    val = datasets.synthetic_samples(2, "val", size=64)
    assert all(s.synthetic and "SYNTHETIC" in s.licence for s in train_ + val)
    assert not {s.name for s in train_} & {s.name for s in val}


def test_deepliif_fields_if_available():
    if not datasets.DEEPLIIF_DIR.is_dir():
        pytest.skip("shared DeepLIIF data not available")
    samples = datasets.deepliif_samples()
    assert {s.split for s in samples} == {"train", "val"} and not any(s.synthetic for s in samples)
    for s in samples:
        assert s.rgb.shape == (512, 256, 3) and len(s.xy) > 0
        assert (s.xy[:, 0] >= -0.5).all() and (s.xy[:, 0] < 255.5).all()
        assert "non-commercial" in s.licence
    resampled = datasets.resample(samples[0], 0.5)
    assert resampled.rgb.shape == (256, 128, 3)


def test_far_background_term_pushes_only_pixels_far_from_clicks():
    from analysis.training_batches import far_background_term

    logits = torch.zeros(1, 3, 32, 32, requires_grad=True)
    points = torch.zeros(1, 32, 32, dtype=torch.long)
    points[0, 16, 16] = 1
    far_background_term(logits, points, radius_px=4.0).backward()
    grad_bg = logits.grad[0, 0]
    assert (grad_bg[14:19, 14:19] == 0).all()  # within the radius: nothing said
    assert (grad_bg[:8] < 0).all()  # far away: background made more likely


def test_init_from_reads_model_and_training_checkpoints(tiny_run, tmp_path):
    from analysis.training_checkpoint import weights_from

    model_weights = weights_from(tiny_run.model_path)
    state_weights = weights_from(tiny_run.checkpoint_path)
    assert model_weights.keys() == state_weights.keys()
    with pytest.raises(TrainingError, match="init_from checkpoint .* not found"):
        train(TrainConfig(out_dir=str(tmp_path), init_from=str(tmp_path / "absent.pt"), **TINY))


# ---------------------------------------------------------------------------- monitor: progress and cancel


def test_the_monitor_hears_every_step_with_loss_and_eta(tmp_path):
    from analysis.training import StepReport

    reports = []
    result = train(TrainConfig(out_dir=str(tmp_path), **dict(TINY, synthetic_val=0)), monitor=reports.append)
    assert result.finished
    assert [r.step for r in reports] == [0, 1, 2, 3, 4]  # before the first step, then after each
    assert reports[0].loss is None and reports[0].eta_seconds is None
    assert all(r.steps == 4 and r.loss is not None and r.eta_seconds is not None for r in reports[1:])
    assert reports[-1].eta_seconds == 0.0
    assert StepReport(step=3, steps=10, first_step=1, seconds=4.0, loss=1.0).eta_seconds == 14.0  # 2 s a step, 7 left


def test_a_monitor_returning_false_stops_between_steps_without_a_model(tmp_path):
    from analysis.training import TrainingCancelled

    config = dict(TINY, synthetic_val=0)
    with pytest.raises(TrainingCancelled) as stopped:
        train(TrainConfig(out_dir=str(tmp_path), **config), monitor=lambda report: report.step < 2)
    assert stopped.value.step == 2
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "model_card.json").exists()
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["step"] == 2  # what was done stays resumable
    resumed = train(TrainConfig(out_dir=str(tmp_path), resume=True, **config))
    assert resumed.finished and resumed.steps_done == 4


def test_a_run_cannot_resume_on_other_data_than_it_began_with(tmp_path):
    """The finished model's card states the resumed call's sources and starting weights: a run begun on
    SYNTHETIC fields and resumed on real ones would be carded as trained on real data only."""
    from analysis.training import TrainConfig, train
    from analysis.training_config import TrainingError

    base = dict(out_dir=str(tmp_path / "run"), steps=4, stop_at_step=2, batch_size=2, crop=64, synthetic_train=4,
                synthetic_val=2, synthetic_size=128, checkpoint_every=1, progress=False, device="cpu")
    train(TrainConfig(sources=("synthetic",), **base))
    resumed = {**base, "stop_at_step": None}
    with pytest.raises(TrainingError, match="cannot resume: checkpoint has synthetic_train=4, now 6"):
        train(TrainConfig(sources=("synthetic",), resume=True, **{**resumed, "synthetic_train": 6}))
    if datasets.deepliif_samples():  # real fields beside the SYNTHETIC ones, where the shared data is
        with pytest.raises(TrainingError, match="cannot resume: checkpoint has sources=\\['synthetic'\\]"):
            train(TrainConfig(sources=("synthetic", "deepliif"), resume=True, **resumed))
    result = train(TrainConfig(sources=("synthetic",), resume=True, **resumed))
    assert result.steps_done == 4


def test_with_half_the_card_measures_the_fp16_weights_it_stores(tmp_path, monkeypatch):
    import analysis.training as training_module

    seen = []
    real = training_module.evaluate_samples

    def spy(model, *args, **kwargs):
        seen.append([p.detach().clone() for p in model.parameters()])
        return real(model, *args, **kwargs)

    monkeypatch.setattr(training_module, "evaluate_samples", spy)
    result = train(TrainConfig(out_dir=str(tmp_path), name="tiny-half", half=True, **TINY))
    (evaluated,) = seen
    assert all(torch.equal(p, p.half().float()) for p in evaluated)  # what fp16 can hold, as stored
    assert result.card["metrics"]
