"""Networks for the point-supervised nucleus detector, and their checkpoints.

Every network maps an RGB batch (B, 3, H, W) to per-pixel logits (B, C, H, W)
for C = 3 classes: 0 background, 1 PD-L1 positive tumour nucleus, 2 negative
tumour nucleus.  Torch is imported inside functions so that Django (which
imports the ``analysis`` package) starts without loading it.

Nothing is ever downloaded: torchvision models are built with ``weights=None``
and ``weights_backbone=None``; trained weights come only from our checkpoints.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

CLASS_NAMES = ("background", "positive", "negative")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHS = ("fcn", "deeplabv3", "unet")
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
CHECKPOINT_FORMAT = "pdl1-point-detector"
CHECKPOINT_VERSION = 1


@dataclass
class DetectorConfig:
    """Everything needed to rebuild a detector and feed it correctly."""

    arch: str = "fcn"
    backbone: str = "resnet101"
    num_classes: int = 3
    # Working resolution in µm/px: images must be resampled to it before
    # inference, and the NMS radius (in µm) is converted with it.
    mpp: float = 0.5
    # Applied to RGB scaled to [0, 1].
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    class_names: tuple[str, ...] = CLASS_NAMES
    unet_width: int = 32  # only used by arch="unet"

    def to_dict(self) -> dict[str, Any]:
        # Lists, not tuples: the checkpoint must load with weights_only=True.
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})


def build_detector(
    arch: str = "fcn", backbone: str = "resnet101", num_classes: int = 3, unet_width: int = 32
) -> nn.Module:
    """Return an untrained detector whose forward gives logits at input resolution.

    fcn / deeplabv3 use a ResNet with output stride 8 (layer3 and layer4
    dilated instead of strided), because nuclei are only ~10-20 px across at
    0.5 µm/px and a stride-32 map would merge neighbours.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {ARCHS}")
    if arch == "unet":
        return _classes().UNet(num_classes=num_classes, width=unet_width)
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose from {BACKBONES}")

    from torchvision.models import segmentation

    if backbone in ("resnet50", "resnet101"):
        # torchvision already builds these dilated with replace_stride_with_dilation=[False, True, True].
        factory = getattr(segmentation, f"{arch}_{backbone}")
        segmenter = factory(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    else:
        from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
        from torchvision.models.segmentation.fcn import FCN, FCNHead

        trunk = _dilated_basic_resnet(backbone)
        if arch == "fcn":
            segmenter = FCN(trunk, FCNHead(512, num_classes))
        else:
            segmenter = DeepLabV3(trunk, DeepLabHead(512, num_classes))
    return _classes().LogitsOnly(segmenter)


def build_detector_from_config(config: DetectorConfig) -> nn.Module:
    return build_detector(config.arch, config.backbone, config.num_classes, config.unet_width)


def _dilated_basic_resnet(name: str) -> nn.Module:
    """ResNet18/34 trunk with output stride 8, returning {"out": layer4 features}.

    torchvision refuses dilation for BasicBlock, so we build the usual model and
    turn the stride-2 convolutions of layer3/layer4 into stride-1 dilated ones
    (dilation 2 and 4), which keeps the receptive field of the original.
    """
    from torchvision import models
    from torchvision.models._utils import IntermediateLayerGetter

    trunk = getattr(models, name)(weights=None)
    for layer, dilation in ((trunk.layer3, 2), (trunk.layer4, 4)):
        for block in layer:
            for conv in (block.conv1, block.conv2):  # the 3x3 convs of a BasicBlock
                conv.stride = (1, 1)
                conv.dilation = (dilation, dilation)
                conv.padding = (dilation, dilation)
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)  # 1x1 projection on the shortcut
    return IntermediateLayerGetter(trunk, return_layers={"layer4": "out"})


@functools.cache
def _classes() -> SimpleNamespace:
    """nn.Module subclasses, defined on first use so that importing this module does not import torch."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class LogitsOnly(nn.Module):
        """Unwraps torchvision's {"out": logits} so every detector returns a plain tensor."""

        def __init__(self, segmenter: nn.Module):
            super().__init__()
            self.segmenter = segmenter

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.segmenter(x)["out"]

    def double_conv(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class UNet(nn.Module):
        """Small U-Net (Ronneberger et al. 2015) trained from scratch, as a baseline to the dilated ResNets."""

        def __init__(self, num_classes: int = 3, width: int = 32, depth: int = 3):
            super().__init__()
            widths = [width * 2**i for i in range(depth + 1)]
            self.down = nn.ModuleList(
                [double_conv(3, widths[0])] + [double_conv(widths[i - 1], widths[i]) for i in range(1, depth + 1)]
            )
            self.up = nn.ModuleList(double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth)))
            self.head = nn.Conv2d(widths[0], num_classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for level, block in enumerate(self.down):
                if level:
                    x = F.max_pool2d(x, 2)
                x = block(x)
                skips.append(x)
            skips.pop()  # the bottleneck is not a skip
            for block in self.up:
                skip = skips.pop()
                # Resize to the skip rather than x2 so odd sizes also work.
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                x = block(torch.cat([x, skip], dim=1))
            return self.head(x)

    return SimpleNamespace(LogitsOnly=LogitsOnly, UNet=UNet)


def __getattr__(name: str) -> Any:
    # Lets callers write `from analysis.nets import UNet` without eager torch import.
    if name in ("LogitsOnly", "UNet"):
        return getattr(_classes(), name)
    raise AttributeError(name)


def save_checkpoint(
    path, model: nn.Module, config: DetectorConfig, extra: dict | None = None, half: bool = False
) -> None:
    """Write weights + config (normalisation, working resolution) as a plain dict.

    half=True stores floating-point tensors as fp16, halving the size of the
    starter model we ship; load_checkpoint restores fp32.  `extra` must hold
    only plain Python/tensor values so that it loads with weights_only=True.
    """
    import torch

    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        state[key] = value.half() if half and value.is_floating_point() else value.clone()
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": config.to_dict(),
            "weights_dtype": "float16" if half else "float32",
            "state_dict": state,
            "extra": dict(extra or {}),
        },
        path,
    )


def load_checkpoint(path, map_location="cpu") -> tuple[nn.Module, DetectorConfig, dict]:
    """Rebuild the model from a checkpoint; returns (model in eval mode, config, extra)."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    if checkpoint.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {checkpoint['version']}, newer than this code")
    config = DetectorConfig.from_dict(checkpoint["config"])
    model = build_detector_from_config(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    model.load_state_dict(state)
    model.to(map_location)
    model.eval()
    return model, config, checkpoint.get("extra", {})
