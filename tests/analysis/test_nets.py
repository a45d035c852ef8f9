"""Detector networks: output stride, shapes, no downloads, checkpoints."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from analysis.nets import (
    ARCHS,
    BACKBONES,
    DetectorConfig,
    build_detector,
    build_detector_from_config,
    load_checkpoint,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[2]



@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture
def no_downloads(monkeypatch, tmp_path):
    """Fail loudly if anything tries to fetch weights, and point the hub cache at an empty folder."""
    import torch.hub
    import torchvision.models._api

    def refuse(*args, **kwargs):
        raise AssertionError(f"download attempted: {args}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(hub))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    return hub


def test_importing_analysis_modules_does_not_import_torch():
    code = (
        "import sys; import analysis.nets, analysis.loss, analysis.postprocess; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("arch", ["fcn", "deeplabv3"])
@pytest.mark.parametrize("backbone", ["resnet18", "resnet34"])
def test_small_backbones_have_output_stride_8_and_full_resolution_logits(arch, backbone):
    model = build_detector(arch, backbone)
    x = torch.rand(2, 3, 128, 128)
    features = model.segmenter.backbone(x)["out"]
    assert features.shape == (2, 512, 16, 16)
    assert model(x).shape == (2, 3, 128, 128)


def test_torchvision_resnet50_backbone_has_output_stride_8():
    model = build_detector("fcn", "resnet50").eval()
    with torch.inference_mode():
        assert model.segmenter.backbone(torch.rand(1, 3, 64, 64))["out"].shape == (1, 2048, 8, 8)


def test_dilation_keeps_every_3x3_conv_size_preserving_in_the_last_stages():
    trunk = build_detector("fcn", "resnet18").segmenter.backbone
    for layer, dilation in ((trunk.layer3, 2), (trunk.layer4, 4)):
        for block in layer:
            assert block.conv1.stride == (1, 1) and block.conv1.dilation == (dilation, dilation)
            assert block.conv2.padding == (dilation, dilation)


@pytest.mark.slow
def test_every_architecture_builds_without_downloading(no_downloads):
    for arch in ARCHS:
        for backbone in BACKBONES if arch != "unet" else ["resnet18"]:
            model = build_detector(arch, backbone).eval()
            with torch.inference_mode():
                logits = model(torch.rand(1, 3, 40, 48))
            assert logits.shape == (1, 3, 40, 48), (arch, backbone)
            assert logits.dtype == torch.float32
    assert list(no_downloads.iterdir()) == []


def test_download_guard_would_catch_a_weights_download(no_downloads):
    import torchvision

    with pytest.raises(AssertionError, match="download attempted"):
        torchvision.models.resnet18(weights="DEFAULT")


def test_unet_width_is_configurable_and_handles_odd_sizes():
    narrow, wide = build_detector("unet", unet_width=8), build_detector("unet", unet_width=16)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(wide) > 3 * count(narrow)
    assert narrow(torch.rand(2, 3, 36, 44)).shape == (2, 3, 36, 44)


def test_unknown_architecture_or_backbone_is_refused():
    with pytest.raises(ValueError):
        build_detector("segformer")
    with pytest.raises(ValueError):
        build_detector("fcn", "vgg16")


def test_checkpoint_round_trip_keeps_weights_config_and_extra(tmp_path):
    config = DetectorConfig(backbone="resnet18", mpp=0.25, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    model = build_detector_from_config(config).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        expected = model(x)
    path = tmp_path / "detector.pt"
    save_checkpoint(path, model, config, extra={"epoch": 7, "val_f1": [0.5, 0.61]})

    loaded, loaded_config, extra = load_checkpoint(path)
    assert loaded_config == config
    assert extra == {"epoch": 7, "val_f1": [0.5, 0.61]}
    assert not loaded.training
    with torch.inference_mode():
        assert torch.equal(loaded(x), expected)
    raw = torch.load(path, weights_only=True)
    assert raw["config"]["mpp"] == 0.25 and raw["config"]["mean"] == [0.5, 0.5, 0.5]


def test_half_checkpoint_stores_fp16_and_loads_fp32(tmp_path):
    config = DetectorConfig(arch="unet", unet_width=8)
    model = build_detector_from_config(config).eval()
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    save_checkpoint(full, model, config)
    save_checkpoint(half, model, config, half=True)

    stored = torch.load(half, weights_only=True)["state_dict"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    assert any(v.dtype == torch.int64 for v in stored.values())  # BatchNorm counters stay integer
    assert half.stat().st_size < 0.6 * full.stat().st_size

    loaded, _, _ = load_checkpoint(half)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(loaded(x), model(x), atol=2e-2)
        assert not torch.equal(loaded(x), model(x))  # really went through fp16


def test_load_refuses_files_that_are_not_detector_checkpoints(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError):
        load_checkpoint(path)
