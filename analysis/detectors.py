"""One interface for every nucleus detector: the classic pipeline and trained networks.

A detector takes an RGB uint8 field and its resolution (µm/px) and returns
Detections in pixels of that field, whatever resolution it works at
internally.  load_detector("classic" | model name | checkpoint path) is what
commands and workers call; loaded networks are cached per process.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .choices import CLASSIC_DETECTOR
from .hashing import sha256_file  # not via the registry: this module runs without Django too
from .labels import NEGATIVE, POSITIVE
from .tiling import OWNERSHIP_BAND_PX

TILE = 512  # px at the working resolution: bounded memory whatever the field size
# Context on each side of a tile's core, px at the working resolution: 32 µm at
# 0.5 µm/px, several nucleus diameters, so a nucleus in the core is seen whole.
OVERLAP = 64


@dataclass
class Detections:
    xy: np.ndarray  # (N, 2) float32, (x, y) = (column, row) px of the input field
    labels: np.ndarray  # (N,) int8: 1 positive, 2 negative
    scores: np.ndarray  # (N,) float32 in [0, 1]
    # Classic only: each cell's compartment DAB (OD), so a whole-slide job can set the positivity
    # cut from all of the slide's cells at merge (classic.adaptive_dab_threshold), not per tile.
    marker: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


@runtime_checkable
class Detector(Protocol):
    name: str
    version: str
    working_mpp: float | None  # None: works at the input's resolution

    def detect(self, rgb: np.ndarray, mpp: float) -> Detections: ...


def _check_input(rgb, mpp) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if not (isinstance(mpp, (int, float)) and math.isfinite(mpp) and mpp > 0):
        raise ValueError(f"mpp must be a positive finite number, got {mpp!r}")
    return rgb


@dataclass
class ClassicDetector:
    """Colour deconvolution + watershed (analysis.classic); "membrane" for PD-L1, "nucleus" for Ki67-like."""

    compartment: str = "membrane"
    params: object = None  # a classic.ClassicParams; its compartment is overridden by `compartment`
    name: str = CLASSIC_DETECTOR
    working_mpp: float | None = None

    @property
    def version(self) -> str:
        return f"classic-{self.compartment}"

    def _params(self):
        from dataclasses import replace

        from .classic import ClassicParams

        return replace(self.params or ClassicParams(), compartment=self.compartment)

    def parameters(self) -> dict:
        """Every setting this detector runs with, as JSON: what a job records for provenance."""
        from dataclasses import fields

        params = self._params()
        out = {f.name: getattr(params, f.name) for f in fields(params) if f.name != "vectors"}
        vectors = params.vectors
        out["stain_vectors"] = {name: None if getattr(vectors, name) is None else [float(v) for v in getattr(vectors, name)]
                                for name in ("haematoxylin", "dab", "residual")}
        out["dab_threshold"] = params.cut  # the compartment's default resolved: "adaptive" or the OD cut
        out["effective_dab_threshold"] = params.effective_dab_threshold
        out["threshold"] = params.detection_threshold  # compartment defaults resolved (None in the dataclass)
        out["dab_haze_od"] = params.haze_od
        from .classic import ADAPTIVE, ADAPTIVE_RULE

        if params.cut == ADAPTIVE:
            out["adaptive_rule"] = list(ADAPTIVE_RULE[params.compartment])
        return out

    def detect(self, rgb, mpp) -> Detections:
        from .classic import detect_classic

        rgb = _check_input(rgb, mpp)
        params = self._params()
        found = detect_classic(rgb, float(mpp), params)
        marker = found.dab_ring if params.compartment == "membrane" else found.dab_nucleus
        return Detections(found.xy.astype(np.float32).reshape(-1, 2), found.labels.astype(np.int8),
                          found.scores.astype(np.float32), marker.astype(np.float32))

    @property
    def adaptive(self) -> bool:
        """Whether the positivity cut comes from the cells themselves (per image, or per slide at merge)."""
        from .classic import ADAPTIVE

        return self._params().cut == ADAPTIVE


@dataclass
class ModelDetector:
    """A trained point detector (analysis.nets) run on overlapping tiles at its working resolution."""

    model: object  # torch nn.Module in eval mode
    config: object  # nets.DetectorConfig
    name: str = "model"
    version: str = ""
    device: str = "auto"
    tile: int = TILE
    overlap: int = OVERLAP
    nms_radius_um: float = 3.0
    min_score: float = 0.5
    batch_size: int = 4
    extra: dict = field(default_factory=dict)
    sha256: str = ""  # of the checkpoint file loaded: jobs compare it with their ModelVersion

    @property
    def working_mpp(self) -> float:
        return float(self.config.mpp)

    @classmethod
    def from_checkpoint(cls, path, name: str | None = None, **kwargs) -> ModelDetector:
        from .nets import load_checkpoint

        path = Path(path)
        model, config, extra = load_checkpoint(path)
        digest = sha256_file(path)
        return cls(model, config, name=name or path.stem, version=digest[:12], sha256=digest, extra=extra, **kwargs)

    def detect(self, rgb, mpp) -> Detections:
        rgb = _check_input(rgb, mpp)
        height, width = rgb.shape[:2]
        work = resize_rgb(rgb, float(mpp) / self.working_mpp)
        xy, labels, scores = self._detect_tiled(work)
        # Pixel centres: working pixel i covers input [i*sx, (i+1)*sx), so x_in = (x + 0.5) * sx - 0.5.
        sx, sy = width / work.shape[1], height / work.shape[0]
        xy = np.stack([(xy[:, 0] + 0.5) * sx - 0.5, (xy[:, 1] + 0.5) * sy - 0.5], axis=1)
        return Detections(xy.astype(np.float32).reshape(-1, 2), labels.astype(np.int8), scores.astype(np.float32))

    def _detect_tiled(self, rgb):
        from .postprocess import predict

        height, width = rgb.shape[:2]
        ys, xs = _tile_starts(height, self.tile, self.overlap), _tile_starts(width, self.tile, self.overlap)
        th, tw = min(self.tile, height), min(self.tile, width)
        ycore, xcore = _core_bounds(ys, th, height), _core_bounds(xs, tw, width)
        boxes = [(y0, x0, yc, xc) for y0, yc in zip(ys, ycore) for x0, xc in zip(xs, xcore)]
        tiles = np.stack([rgb[y0:y0 + th, x0:x0 + tw] for y0, x0, _, _ in boxes])
        points = predict(self.model, tiles, self.config, device=resolve_device(self.device),
                         nms_radius_um=self.nms_radius_um, min_score=self.min_score, batch_size=self.batch_size)
        all_xy, all_labels, all_scores = [], [], []
        band = int(min(OWNERSHIP_BAND_PX, 0.5 * self.nms_radius_um / self.working_mpp))
        for (y0, x0, (ylo, yhi), (xlo, xhi)), p in zip(boxes, points):
            gxy = p.xy.astype(np.float64) + [x0, y0]
            # Keep a point in the tile whose core holds its pixel, and within `band` px past a core
            # side shared with another tile: two tiles can place one nucleus a fraction of a pixel
            # apart on either side of their border, and neither would keep it.  The NMS below
            # (radius at least twice the band) leaves one point of a nucleus both keep.
            px, py = np.floor(gxy[:, 0] + 0.5), np.floor(gxy[:, 1] + 0.5)
            x_lo, x_hi = (xlo - band if xlo > 0 else xlo), (xhi + band if xhi < width else xhi)
            y_lo, y_hi = (ylo - band if ylo > 0 else ylo), (yhi + band if yhi < height else yhi)
            own = (px >= x_lo) & (px < x_hi) & (py >= y_lo) & (py < y_hi)
            all_xy.append(gxy[own])
            all_labels.append(p.labels[own])
            all_scores.append(p.scores[own])
        xy = np.concatenate(all_xy) if all_xy else np.zeros((0, 2))
        labels = np.concatenate(all_labels) if all_labels else np.zeros(0, np.int8)
        scores = np.concatenate(all_scores) if all_scores else np.zeros(0, np.float32)
        if len(boxes) > 1 and len(xy):
            # Two tiles can place one nucleus's peak a pixel apart on either side of
            # a core border; the same NMS as inside a tile resolves it.
            from .nms import greedy_keep

            keep = greedy_keep(xy, scores, self.nms_radius_um / self.working_mpp)
            xy, labels, scores = xy[keep], labels[keep], scores[keep]
        return xy.reshape(-1, 2), labels, scores


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: step tile - overlap, the last one flush with the edge."""
    if size <= tile:
        return [0]
    step = max(tile - overlap, 1)
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def _core_bounds(starts: list[int], tile: int, size: int) -> list[tuple[int, int]]:
    """[lo, hi) owned by each tile: borders in the middle of each overlap."""
    cuts = [0] + [(starts[i] + tile + starts[i + 1]) // 2 for i in range(len(starts) - 1)] + [size]
    return list(zip(cuts[:-1], cuts[1:]))


def resize_rgb(rgb: np.ndarray, scale: float) -> np.ndarray:
    """Resample by `scale` (output/input size); Pillow's filters antialias when shrinking."""
    if abs(scale - 1.0) < 1e-6:
        return rgb
    from PIL import Image

    height, width = rgb.shape[:2]
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def resolve_device(device: str) -> str:
    """The one device resolution (detection, training): "auto" is "cuda" when a CUDA GPU is
    available, else "cpu"; any other name is returned as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=4)
def _cached_model_detector(path: str, mtime_ns: int, size: int, name: str) -> ModelDetector:
    # mtime and size are part of the key so that a replaced file is reloaded.
    return ModelDetector.from_checkpoint(path, name=name)


def load_detector(name_or_path: str | None = None, compartment: str = "membrane") -> Detector:
    """ "classic" -> ClassicDetector; a registered model name or checkpoint path -> ModelDetector (cached).

    Raises registry.UnknownDetector for anything else.
    """
    name = str(name_or_path or CLASSIC_DETECTOR)
    if name == CLASSIC_DETECTOR:
        return ClassicDetector(compartment=compartment)
    from .registry import resolve_detector_path

    path = Path(resolve_detector_path(name)).resolve()
    stat = path.stat()
    label = name if path.name != name and not Path(name).exists() else path.stem
    return _cached_model_detector(str(path), stat.st_mtime_ns, stat.st_size, label)


def clear_cache() -> None:
    _cached_model_detector.cache_clear()
