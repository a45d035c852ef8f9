"""Which detector checkpoint to use: registered ModelVersions, activation, the shipped starter.

Detector choice, in order: the model activated for (indication, marker), then
the one activated for (any indication, marker), then the shipped starter
model once its file is in analysis/starter/, else the classic pipeline.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from django.conf import settings
from django.db import transaction

from cases.choices import Marker

from .choices import CLASSIC_DETECTOR, ModelOrigin
from .models import ANY_INDICATION, ActiveModel, ModelVersion

STARTER_DIR = Path(__file__).resolve().parent / "starter"
STARTER_NAME = "fcn-r18-starter-v5"
STARTER_FILE = STARTER_DIR / f"{STARTER_NAME}.pt"
STARTER_CARD = STARTER_DIR / "model_card.json"


class UnknownDetector(LookupError):
    """Neither a registered model name nor an existing checkpoint file."""


class RegistryError(ValueError):
    """A checkpoint cannot be registered as asked."""


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint_config(path) -> dict:
    """The DetectorConfig dict stored in a checkpoint, without building the network."""
    import torch

    from .nets import CHECKPOINT_FORMAT

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  torch raises many types for a bad file
        raise RegistryError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise RegistryError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint (a training state? use model.pt)")
    return checkpoint["config"]


def _stored_path(path: Path) -> str:
    """Relative to MEDIA_ROOT when inside it (portable), otherwise absolute."""
    path = path.resolve()
    media = Path(settings.MEDIA_ROOT).resolve()
    return str(path.relative_to(media)) if path.is_relative_to(media) else str(path)


def register_checkpoint(
    path, name: str, metrics: dict | None = None, training_data: dict | None = None,
    origin: str = ModelOrigin.TRAINED, notes: str = "",
) -> ModelVersion:
    """Store a ModelVersion for a checkpoint file.

    metrics / training_data default to those of the model_card.json beside
    the file.  Registering the same name again with the same weights returns
    the existing version; with different weights it is an error (versions
    are immutable: pick a new name).
    """
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_slug

    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"checkpoint {path} not found")
    try:
        validate_slug(name)
    except ValidationError:
        raise RegistryError(f"model name {name!r} must be a slug (letters, digits, - and _)") from None
    if name == CLASSIC_DETECTOR:
        raise RegistryError(f"{CLASSIC_DETECTOR!r} is reserved for the classic pipeline")
    digest = sha256_file(path)
    existing = ModelVersion.objects.filter(name=name).first()
    if existing is not None:
        if existing.sha256 != digest:
            raise RegistryError(f"model {name!r} is already registered with other weights; choose a new name")
        return existing
    config = read_checkpoint_config(path)
    card = _card_beside(path)
    if metrics is None:
        metrics = card.get("metrics", {})
    if training_data is None:
        training_data = card.get("training_data", {})
    return ModelVersion.objects.create(
        name=name,
        file=_stored_path(path),
        sha256=digest,
        arch=config["arch"],
        backbone=config.get("backbone", "") if config["arch"] != "unet" else "",
        mpp=float(config["mpp"]),
        normalisation={"mean": list(config["mean"]), "std": list(config["std"])},
        metrics=metrics,
        training_data=training_data,
        origin=origin,
        notes=notes,
    )


def _card_beside(path: Path) -> dict:
    for candidate in (path.parent / "model_card.json", path.with_suffix(".json")):
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    return {}


def resolve_detector_path(name_or_path) -> Path:
    """Checkpoint file of a registered model name, or an existing checkpoint path."""
    name = str(name_or_path)
    version = ModelVersion.objects.filter(name=name).first()
    if version is not None:
        path = version.path()
        if not path.is_file():
            raise UnknownDetector(f"model {name!r} is registered but its file {path} is missing")
        return path
    if name == STARTER_NAME and STARTER_FILE.is_file():
        return STARTER_FILE  # shipped, possibly not registered yet in this database
    path = Path(name)
    if path.is_file():
        return path
    known = sorted(ModelVersion.objects.values_list("name", flat=True))
    hint = " (the classic pipeline has no checkpoint)" if name == CLASSIC_DETECTOR else ""
    raise UnknownDetector(
        f"unknown detector {name!r}{hint}: not a registered model "
        f"({', '.join(known) if known else 'none registered'}) and not an existing file"
    )


def active_model(indication: str | None, marker: str = Marker.PDL1) -> ModelVersion | None:
    """The model activated for (indication, marker), else for (any indication, marker)."""
    for key in ([indication] if indication else []) + [ANY_INDICATION]:
        active = ActiveModel.objects.select_related("model_version").filter(indication=key, marker=marker).first()
        if active is not None:
            return active.model_version
    return None


def default_detector_name(indication: str | None = None, marker: str = Marker.PDL1) -> str:
    """Active model, else the shipped starter when its file exists, else "classic"."""
    active = active_model(indication, marker)
    if active is not None:
        return active.name
    if STARTER_FILE.is_file():
        return STARTER_NAME
    return CLASSIC_DETECTOR


def ensure_starter_registered() -> ModelVersion | None:
    """Register the shipped starter checkpoint (idempotent); None when it is not shipped."""
    if not STARTER_FILE.is_file():
        return None
    with transaction.atomic():
        existing = ModelVersion.objects.select_for_update().filter(name=STARTER_NAME).first()
        if existing is not None:
            stored = _stored_path(STARTER_FILE)
            if existing.file != stored:  # the repository moved: same weights, new place
                existing.file = stored
                existing.save(update_fields=["file"])
            return existing
        card = json.loads(STARTER_CARD.read_text(encoding="utf-8")) if STARTER_CARD.is_file() else {}
        return register_checkpoint(
            STARTER_FILE, STARTER_NAME, metrics=card.get("metrics", {}),
            training_data=card.get("training_data", {}), origin=ModelOrigin.SHIPPED,
            notes="Shipped starter model; see analysis/starter/MODEL_CARD.md",
        )
