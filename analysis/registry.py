"""Which detector checkpoint to use: registered ModelVersions, activation, the shipped starter.

Default detector of clinical jobs, in order: the clinical model activated for (indication,
marker), then the one activated for (any indication, marker), else the classic pipeline with its
adaptive cut for nuclear markers, the best measured on unseen labs (bench/RESULTS-accuracy.md).  The shipped starter
in analysis/starter/ is registered as a research ModelVersion at migrate time: a model is research until it is
validated and promoted (analysis.promotion), and the starter was trained on SYNTHETIC and non-commercial DeepLIIF
fields and is weaker than classic on every real held-out source.  Research models and checkpoint paths run only
from the research CLI.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction

from analysis.choices import Marker

from .choices import CLASSIC_DETECTOR, ModelOrigin, ModelStatus
from .hashing import sha256_file  # noqa: F401  also the registry's: jobs and tests identify weights with it
from .models import ActiveModel, ModelVersion

log = logging.getLogger(__name__)

STARTER_DIR = Path(__file__).resolve().parent / "starter"
STARTER_NAME = "fcn-r18-starter-v5"
STARTER_FILE = STARTER_DIR / f"{STARTER_NAME}.pt"
STARTER_CARD = STARTER_DIR / "model_card.json"


class UnknownDetector(LookupError):
    """Neither a registered model name nor an existing checkpoint file."""


class RegistryError(ValueError):
    """A checkpoint cannot be registered as asked."""


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
    are immutable: pick a new name).  The version's file is a read-only copy
    under MEDIA_ROOT/models/NAME/ (registered_copy), never the training
    output: a resumed or repeated run writes its model.pt again in place,
    which would have replaced a registered version's weights.
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
    if len(name) > ModelVersion._meta.get_field("name").max_length:
        raise RegistryError(f"model name {name!r} is longer than {ModelVersion._meta.get_field('name').max_length} "
                            "characters")
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
    stored, digest, fresh = registered_copy(path, name, card)
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(
                name=name, file=_stored_path(stored), sha256=digest, **_config_fields(config),
                metrics=metrics, training_data=training_data, origin=origin, notes=notes,
            )
    except Exception:
        # Registered meanwhile by another call (the same weights: idempotent, as above), or not registered
        # at all: then no copied file stays without its row, unless a row names it.
        raced = ModelVersion.objects.filter(name=name).first()
        if raced is not None and raced.sha256 == digest:
            return raced
        if fresh and not ModelVersion.objects.filter(file=_stored_path(stored)).exists():
            for leftover in (stored, stored.with_suffix(".json")):
                leftover.unlink(missing_ok=True)
        raise


def registered_copy(path: Path, name: str, card: dict) -> tuple[Path, str, bool]:
    """(file, sha256, whether this call wrote it) of a read-only copy of the checkpoint at
    MEDIA_ROOT/models/NAME/SHA256[:16].pt, with its card beside it as SHA256[:16].json (one card per weights).
    The hash is taken of the copy itself, so the registered sha256 is that of the bytes stored even if the
    source is being rewritten meanwhile."""
    import os
    import shutil
    import tempfile

    folder = Path(settings.MEDIA_ROOT) / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".incoming-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out)
        digest = sha256_file(tmp)
        read_checkpoint_config(tmp)  # the copy must still be a checkpoint (the source may have been replaced)
        final = folder / f"{digest[:16]}.pt"
        fresh = not final.exists()
        if not fresh:
            if sha256_file(final) != digest:
                raise RegistryError(f"{final} exists with other contents: not overwritten")
        else:
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if card:
        try:
            _registered_card(final.with_suffix(".json"), card)
        except BaseException:
            if fresh:  # no weights copied by this call stay behind without their card
                final.unlink(missing_ok=True)
            raise
    return final, digest, fresh


def _registered_card(card_file: Path, card: dict) -> None:
    """Write the card copy of registered weights, whole or not at all (a temporary file, then os.replace);
    a registered copy is never changed: one already there must be exactly this card, else RegistryError
    (a copy cut short by a crash, or another run's card for the same weights, is not kept as this version's)."""
    from .atomic import write_text_atomically

    text = json.dumps(card, indent=1)
    try:
        existing = card_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        write_text_atomically(card_file, text, mode=0o444)
        return
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{card_file} exists but cannot be read ({exc}): not overwritten; check it, remove it "
                            "if no registered version names it, and register again") from None
    if existing != text:
        raise RegistryError(f"{card_file} exists with another card than the one beside these weights (cut short, "
                            "or another run's card for the same weights): a registered card is never rewritten; "
                            "check it, remove it if no registered version names it, and register again")


def _config_fields(config: dict) -> dict:
    return {"arch": config["arch"], "backbone": config.get("backbone", "") if config["arch"] != "unet" else "",
            "mpp": float(config["mpp"]), "normalisation": {"mean": list(config["mean"]), "std": list(config["std"])}}


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
    """The clinical model activated for (indication, marker), else for (any indication, marker)."""
    return ActiveModel.current(indication, marker)


def clinical_models():
    """The registered versions that jobs started from the web or the API may run."""
    return ModelVersion.objects.filter(status=ModelStatus.CLINICAL).order_by("name")


def default_detector_name(indication: str | None = None, marker: str = Marker.PDL1) -> str:
    """Active clinical model, else "classic".

    Not the shipped starter: on real Ki-67 tissue from labs neither had seen, classic with its
    adaptive cut was better on every held-out source, in detection F1 (0.67 / 0.65 / 0.89
    against 0.52 / 0.38 / 0.74) and in positive-% error (8.6 / 9.5 / 3.4 points against
    18.1 / 10.3 / 3.4): bench/RESULTS-accuracy.md.  The starter stays registered, as a research model.
    """
    active = active_model(indication, marker)
    if active is not None:
        return active.name
    return CLASSIC_DETECTOR


@functools.lru_cache(maxsize=4)
def _starter_facts(path: str, mtime_ns: int, size: int) -> tuple[str, dict]:
    """(sha256, checkpoint config) of the starter file; cached: migrate and test flushes repeat it."""
    return sha256_file(path), read_checkpoint_config(path)


def ensure_starter_registered(model=ModelVersion, using: str = "default"):
    """Register the shipped starter checkpoint (idempotent) as a research model: it runs from the research CLI,
    and in clinical jobs only once promoted like any other (analysis.promotion); a registered row keeps its
    status. None when it is not shipped. `model` is the historical ModelVersion when called from post_migrate."""
    if not STARTER_FILE.is_file():
        return None
    stat = STARTER_FILE.stat()
    digest, config = _starter_facts(str(STARTER_FILE), stat.st_mtime_ns, stat.st_size)
    stored = _stored_path(STARTER_FILE)
    with transaction.atomic(using=using):
        existing = model.objects.using(using).select_for_update().filter(name=STARTER_NAME).first()
        if existing is not None:
            if existing.sha256 != digest:
                # Versions are immutable: a new starter needs a new name. Jobs check the hash
                # before detecting, so this cannot run unrecorded weights; say so loudly.
                log.error("the shipped starter %s differs from its registered sha256 %s (file %s): not updated",
                          STARTER_NAME, existing.sha256, digest)
            elif existing.file != stored:  # the repository moved: same weights, new place
                existing.file = stored
                existing.save(update_fields=["file"])
            return existing
        card = json.loads(STARTER_CARD.read_text(encoding="utf-8")) if STARTER_CARD.is_file() else {}
        return model.objects.using(using).create(
            name=STARTER_NAME, file=stored, sha256=digest, **_config_fields(config),
            metrics=card.get("metrics", {}), training_data=card.get("training_data", {}),
            origin=ModelOrigin.SHIPPED, status=ModelStatus.RESEARCH,
            notes="Shipped starter model; see analysis/starter/MODEL_CARD.md",
        )


def register_starter_after_migrate(sender, app_config=None, using="default", apps=None, **kwargs):
    """post_migrate handler (analysis.apps): the shipped starter is a registered ModelVersion in every
    migrated database, so jobs that run it record its sha256."""
    try:
        model = apps.get_model("analysis", "ModelVersion") if apps is not None else ModelVersion
    except LookupError:  # analysis not migrated in this plan
        return
    if "status" not in {f.name for f in model._meta.get_fields()}:
        return  # migrated back to before model statuses existed
    ensure_starter_registered(model, using=using)
