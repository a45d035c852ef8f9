"""Model registry: registration, path resolution, activation per (indication, marker), the starter."""

import json

import factory
import pytest
from django.db import IntegrityError, transaction

from analysis import registry
from analysis.choices import ModelStatus
from analysis.models import ActiveModel, ModelEvaluation, ModelPromotion, ModelVersion
from analysis.nets import DetectorConfig, build_detector, save_checkpoint
from cases.choices import Indication, Marker

pytestmark = pytest.mark.django_db


# A card whose held-out fields are PD-L1's (SYNTHETIC fields are rendered as PD-L1 fields): a model's marker is
# that of the fields it was measured on (ModelVersion.held_out_marker); a card without held-out fields is of
# unknown marker, never activated nor run on a clinical slide.
PDL1_HELD_OUT = {"synthetic": True, "sources": [{"source": "synthetic", "synthetic": True, "marker": "PD-L1",
                                                 "fields": {"train": 2, "val": 1}}]}


def tiny_checkpoint(path, seed=0, mpp=0.5):
    """A real checkpoint of a very small U-Net: fast to build, same format as the shipped ones."""
    import torch

    torch.manual_seed(seed)
    config = DetectorConfig(arch="unet", unet_width=4, mpp=mpp)
    save_checkpoint(path, build_detector("unet", unet_width=4), config)
    return path


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """A registered version without a file: enough for activation logic."""

    class Meta:
        model = ModelVersion

    name = factory.Sequence(lambda n: f"fcn-r18-test-{n}")
    file = factory.LazyAttribute(lambda o: f"models/{o.name}.pt")
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    arch, backbone, mpp = "fcn", "resnet18", 0.5
    status = ModelStatus.CLINICAL
    training_data = factory.LazyFunction(lambda: json.loads(json.dumps(PDL1_HELD_OUT)))


def promoted(version, against=None):
    """Record the promotion a default needs: `version` evaluated against `against` (a ModelVersion, or None
    for classic) and released with a reason, as analysis.promotion does after a review."""
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="promoter")
    evaluation = ModelEvaluation.objects.create(
        model_version=version, baseline=against.name if against else "classic",
        baseline_sha256=against.sha256 if against else "", data="held-out", fields=1,
        candidate_scores={}, baseline_scores={})
    ModelPromotion.objects.create(model_version=version, evaluation=evaluation, from_status=ModelStatus.RESEARCH,
                                  to_status=ModelStatus.CLINICAL, reason="reviewed", promoted_by=user)
    return version


@pytest.fixture
def version(media_root):
    path = tiny_checkpoint(media_root / "v1.pt")
    version = registry.register_checkpoint(path, "unet-v1", metrics={"f1": 0.5}, training_data=PDL1_HELD_OUT)
    version.set_status(ModelStatus.CLINICAL)
    version.save()
    return promoted(version)


@pytest.fixture
def no_starter(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "STARTER_NAME", "absent-starter")
    monkeypatch.setattr(registry, "STARTER_FILE", tmp_path / "absent.pt")


def test_register_reads_config_and_hash(version, media_root):
    digest = registry.sha256_file(media_root / "v1.pt")
    assert version.file == f"models/unet-v1/{digest[:16]}.pt"  # a copy, relative to MEDIA_ROOT
    assert version.sha256 == digest == registry.sha256_file(version.path())
    assert (version.arch, version.mpp, version.synthetic) == ("unet", 0.5, True)
    assert version.normalisation["mean"] == list(DetectorConfig().mean)
    assert version.path() == media_root / version.file


def test_a_registered_version_keeps_its_weights_when_the_training_output_is_written_again(tmp_path, media_root):
    """A resumed or repeated run writes model.pt in place; the registered version must not change with it."""
    out = tmp_path / "run"
    out.mkdir()
    tiny_checkpoint(out / "model.pt", seed=0)
    first = registry.register_checkpoint(out / "model.pt", "run-v1")
    tiny_checkpoint(out / "model.pt", seed=1)  # the same folder trained again
    second = registry.register_checkpoint(out / "model.pt", "run-v2")
    assert first.path() != second.path() and first.sha256 != second.sha256
    assert registry.sha256_file(first.path()) == first.sha256  # still the weights registered as run-v1
    assert registry.sha256_file(second.path()) == second.sha256
    assert not first.path().stat().st_mode & 0o222  # read-only
    assert not list(first.path().parent.glob(".incoming-*"))


def test_register_reads_the_card_beside_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    tiny_checkpoint(out / "model.pt")
    (out / "model_card.json").write_text(json.dumps({"metrics": {"x": 1}, "training_data": {"synthetic": False}}))
    v = registry.register_checkpoint(out / "model.pt", "from-card")
    assert v.metrics == {"x": 1} and v.training_data == {"synthetic": False}
    assert v.file.startswith("models/from-card/")  # copied under MEDIA_ROOT, the card beside it
    assert json.loads(v.path().with_suffix(".json").read_text())["metrics"] == {"x": 1}  # one card per weights


def test_register_same_name_is_idempotent_but_new_weights_need_a_new_name(version, media_root):
    assert registry.register_checkpoint(media_root / "v1.pt", "unet-v1") == version
    tiny_checkpoint(media_root / "v2.pt", seed=1)
    with pytest.raises(registry.RegistryError, match="already registered"):
        registry.register_checkpoint(media_root / "v2.pt", "unet-v1")


@pytest.mark.parametrize("name", ["has space", "classic"])
def test_register_rejects_bad_names(media_root, name):
    tiny_checkpoint(media_root / "v.pt")
    with pytest.raises(registry.RegistryError):
        registry.register_checkpoint(media_root / "v.pt", name)


def test_register_rejects_a_non_checkpoint(media_root):
    (media_root / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(registry.RegistryError, match="not a readable checkpoint"):
        registry.register_checkpoint(media_root / "junk.pt", "junk")


def test_resolve_by_name_or_path(version, media_root):
    assert registry.resolve_detector_path("unet-v1") == version.path()
    assert registry.resolve_detector_path(str(media_root / "v1.pt")) == media_root / "v1.pt"


@pytest.mark.parametrize("name", ["nope", "classic", "/no/such/file.pt"])
def test_resolve_unknown_is_a_clear_error(version, name):
    with pytest.raises(registry.UnknownDetector, match="unknown detector .*unet-v1"):
        registry.resolve_detector_path(name)


def test_resolve_registered_but_missing_file(version, media_root):
    version.path().unlink()
    with pytest.raises(registry.UnknownDetector, match="file .* is missing"):
        registry.resolve_detector_path("unet-v1")


def test_one_active_model_per_indication_and_marker(version):
    lung = Indication.LUNG_SQUAMOUS
    v2 = promoted(ModelVersionFactory(), against=version)  # compared with the default it replaces for lung
    version.activate(lung, Marker.PDL1)
    v2.activate(lung, Marker.PDL1)
    version.activate(Indication.BREAST_DUCTAL, Marker.PDL1)
    assert ActiveModel.objects.filter(indication=lung, marker=Marker.PDL1).count() == 1
    assert registry.active_model(lung) == v2
    assert registry.active_model(Indication.BREAST_DUCTAL) == version
    assert registry.active_model(lung, Marker.KI67) is None
    with pytest.raises(IntegrityError), transaction.atomic():
        ActiveModel.objects.create(indication=lung, marker=Marker.PDL1, model_version=version)


def test_any_indication_is_the_fallback(version, no_starter):
    assert registry.default_detector_name(Indication.OTHER) == "classic"
    version.activate("", Marker.PDL1)
    assert registry.active_model(Indication.OTHER) == version
    assert registry.default_detector_name(Indication.OTHER) == "unet-v1"
    assert registry.default_detector_name() == "unet-v1"


def test_activate_validates_its_arguments(version):
    with pytest.raises(ValueError):
        version.activate("lungs", Marker.PDL1)
    with pytest.raises(ValueError):
        version.activate(Indication.OTHER, "CD8")


def test_activation_is_audited(version, media_root):
    from auditlog.models import LogEntry

    version.activate(Indication.OTHER, Marker.PDL1)
    assert LogEntry.objects.get_for_model(ActiveModel).count() == 1
    # registered, then promoted to clinical use (the fixture): both audited
    entries = LogEntry.objects.get_for_model(ModelVersion).order_by("timestamp", "pk")
    assert [e.action for e in entries] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    assert "status" in entries[1].changes_dict


@pytest.fixture
def shipped_starter(monkeypatch, tmp_path):
    starter = tmp_path / "starter"
    starter.mkdir()
    tiny_checkpoint(starter / "s.pt")
    (starter / "model_card.json").write_text(json.dumps({"metrics": {"m": 1}, "training_data": {"synthetic": True}}))
    monkeypatch.setattr(registry, "STARTER_NAME", "starter-under-test")  # the real one is registered already
    monkeypatch.setattr(registry, "STARTER_FILE", starter / "s.pt")
    monkeypatch.setattr(registry, "STARTER_CARD", starter / "model_card.json")
    return starter / "s.pt"


def test_no_starter_file_registers_nothing(shipped_starter, no_starter):
    # no_starter ran last, so the file is absent here.
    assert registry.default_detector_name() == "classic"
    assert registry.ensure_starter_registered() is None


def test_starter_default_and_idempotent_registration(shipped_starter):
    assert registry.resolve_detector_path(registry.STARTER_NAME) == shipped_starter  # before registration
    before = ModelVersion.objects.count()
    # Registered when migrate did not (the file was shipped later); never the default itself.
    assert registry.default_detector_name(Indication.LUNG_SQUAMOUS) == "classic"
    registry.ensure_starter_registered()
    first = ModelVersion.objects.get(name=registry.STARTER_NAME)
    second = registry.ensure_starter_registered()
    assert first == second and ModelVersion.objects.count() == before + 1
    assert first.origin == "shipped" and first.metrics == {"m": 1} and first.synthetic
    assert first.status == ModelStatus.RESEARCH and first.sha256 == registry.sha256_file(shipped_starter)
    assert registry.resolve_detector_path(registry.STARTER_NAME) == shipped_starter


def test_the_shipped_starter_is_registered_at_migrate_time():
    """No code ran but migrate (the test database's): the starter is a research ModelVersion (never validated
    nor promoted: classic beats it on every real held-out source) with the sha256 of the shipped file; the
    default detector is classic, the best measured on unseen labs."""
    if not registry.STARTER_FILE.is_file():
        pytest.skip("starter model not shipped")
    starter = ModelVersion.objects.get(name=registry.STARTER_NAME)
    assert starter.sha256 == registry.sha256_file(registry.STARTER_FILE)
    assert (starter.origin, starter.status) == ("shipped", ModelStatus.RESEARCH)
    assert not starter.promotions.exists() and starter not in registry.clinical_models()
    assert starter.path() == registry.STARTER_FILE
    assert registry.default_detector_name(Indication.LUNG_SQUAMOUS) == "classic"


def test_post_migrate_registration_is_idempotent():
    from django.apps import apps
    from django.core.management import call_command

    if not registry.STARTER_FILE.is_file():
        pytest.skip("starter model not shipped")
    before = list(ModelVersion.objects.values_list("pk", "sha256"))
    call_command("migrate", verbosity=0)  # nothing to apply: post_migrate runs again
    registry.register_starter_after_migrate(apps.get_app_config("analysis"), apps=apps)
    assert list(ModelVersion.objects.values_list("pk", "sha256")) == before


def test_only_clinical_models_are_activated_or_offered(media_root):
    research = registry.register_checkpoint(tiny_checkpoint(media_root / "r.pt"), "research-v1",
                                            training_data=PDL1_HELD_OUT)
    assert research.status == ModelStatus.RESEARCH  # what training registers
    with pytest.raises(ValueError, match="promote it to clinical"):
        research.activate(Indication.OTHER, Marker.PDL1)
    assert research not in registry.clinical_models()
    research.set_status(ModelStatus.CLINICAL)
    research.save()
    assert research in registry.clinical_models()
    promoted(research).activate(Indication.OTHER, Marker.PDL1)
    with pytest.raises(ValueError, match="active model"):
        research.set_status(ModelStatus.RESEARCH)


def test_real_starter_file_if_shipped():
    """The checkpoint in analysis/starter/, when present, loads and has a card that says SYNTHETIC."""
    if not registry.STARTER_FILE.is_file():
        pytest.skip("starter model not shipped yet")
    assert registry.STARTER_FILE.stat().st_size <= 25 * 1024**2
    config = registry.read_checkpoint_config(registry.STARTER_FILE)
    assert config["mpp"] == 0.5
    card = (registry.STARTER_DIR / "MODEL_CARD.md").read_text()
    assert "SYNTHETIC" in card and "non-commercial" in card
    assert registry.ensure_starter_registered().origin == "shipped"


def test_a_default_is_a_promoted_model_compared_with_the_default_it_replaces(version, media_root, no_starter):
    """Clinical (selectable by name) is not enough to decide every job's number: activation needs a promotion
    whose evaluation was against the detector it replaces (classic, or the active model)."""
    unreviewed = registry.register_checkpoint(tiny_checkpoint(media_root / "u.pt", seed=1), "unreviewed-v1",
                                              training_data=PDL1_HELD_OUT)
    unreviewed.set_status(ModelStatus.CLINICAL)
    unreviewed.save()
    with pytest.raises(ValueError, match="no promotion record"):
        unreviewed.activate("", Marker.PDL1)
    assert not ActiveModel.objects.exists() and registry.default_detector_name() == "classic"

    version.activate("", Marker.PDL1)  # promoted against classic, which it replaces
    version.activate("", Marker.PDL1)  # again: nothing to compare
    challenger = promoted(registry.register_checkpoint(tiny_checkpoint(media_root / "c.pt", seed=2), "challenger-v1",
                                                       training_data=PDL1_HELD_OUT))
    challenger.set_status(ModelStatus.CLINICAL)
    challenger.save()
    for indication in ("", Indication.LUNG_SQUAMOUS):  # lung falls back to the any-indication default
        with pytest.raises(ValueError, match="against another detector than unet-v1"):
            challenger.activate(indication, Marker.PDL1)
    assert registry.default_detector_name(Indication.LUNG_SQUAMOUS) == "unet-v1"
    promoted(challenger, against=version).activate(Indication.LUNG_SQUAMOUS, Marker.PDL1)
    assert registry.default_detector_name(Indication.LUNG_SQUAMOUS) == "challenger-v1"
    assert registry.default_detector_name(Indication.BREAST_DUCTAL) == "unet-v1"


def test_the_starter_is_research_until_promoted():
    if not registry.STARTER_FILE.is_file():
        pytest.skip("starter model not shipped")
    starter = ModelVersion.objects.get(name=registry.STARTER_NAME)
    assert starter not in registry.clinical_models()
    with pytest.raises(ValueError, match="promote it to clinical"):
        starter.activate("", Marker.PDL1)
    starter.set_status(ModelStatus.CLINICAL)  # set by hand, without a review: still never the default
    starter.save()
    with pytest.raises(ValueError, match="no promotion record"):
        starter.activate("", Marker.PDL1)


def test_a_migration_lowers_a_shipped_model_without_a_promotion_to_research():
    """Databases migrated before: the starter was registered clinical with no evaluation or promotion."""
    import importlib
    from types import SimpleNamespace

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module("analysis.migrations.0009_shipped_starter_research")
    unreviewed = ModelVersionFactory(name="old-starter-v4", origin="shipped")
    reviewed = promoted(ModelVersionFactory(name="reviewed-starter-v3", origin="shipped"))
    trained = ModelVersionFactory(name="trained-v1")  # not shipped: its status is the review's business
    assert {v.status for v in (unreviewed, reviewed, trained)} == {ModelStatus.CLINICAL}
    migration.lower_unpromoted_shipped_models(apps, SimpleNamespace(connection=connection))
    statuses = dict(ModelVersion.objects.values_list("name", "status"))
    assert statuses["old-starter-v4"] == ModelStatus.RESEARCH
    assert statuses["reviewed-starter-v3"] == statuses["trained-v1"] == ModelStatus.CLINICAL


def test_the_admin_activates_only_through_the_same_check(version, media_root, no_starter):
    from django.contrib.admin.sites import site
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    unreviewed = registry.register_checkpoint(tiny_checkpoint(media_root / "u.pt", seed=1), "unreviewed-v1",
                                              training_data=PDL1_HELD_OUT)
    unreviewed.set_status(ModelStatus.CLINICAL)
    unreviewed.save()
    admin = site._registry[ActiveModel]
    request = RequestFactory().post("/admin/")
    request.user = get_user_model().objects.create_superuser("root", "r@example.org", "pw")
    form_class = admin.get_form(request)
    form = form_class({"indication": "", "marker": Marker.PDL1, "model_version": unreviewed.pk})
    assert not form.is_valid() and "no promotion record" in str(form.errors)
    form = form_class({"indication": "", "marker": Marker.PDL1, "model_version": version.pk})
    assert form.is_valid(), form.errors
    form.save()
    assert registry.default_detector_name() == "unet-v1"


def test_a_registration_that_fails_leaves_no_file_and_long_names_are_refused(tmp_path, media_root, monkeypatch):
    tiny_checkpoint(tmp_path / "m.pt")
    with pytest.raises(registry.RegistryError, match="longer than 100"):
        registry.register_checkpoint(tmp_path / "m.pt", "a" * 101)

    def taken_meanwhile(**kwargs):
        raise IntegrityError("UNIQUE constraint failed: analysis_modelversion.name")

    monkeypatch.setattr(ModelVersion.objects, "create", taken_meanwhile)
    with pytest.raises(IntegrityError):
        registry.register_checkpoint(tmp_path / "m.pt", "raced-v1")
    assert not list((media_root / "models").rglob("*.pt"))


def test_two_registrations_of_the_same_weights_at_once_keep_the_file(tmp_path, media_root, monkeypatch):
    """B registers while A copies: A's create fails on the name, finds B's row with the same weights and
    returns it (same name and weights is idempotent) without removing the file B's row names."""
    tiny_checkpoint(tmp_path / "m.pt")
    real_copy = registry.registered_copy

    def b_registers_meanwhile(path, name, card):
        stored, digest, fresh = real_copy(path, name, card)
        ModelVersion.objects.create(name=name, file=registry._stored_path(stored), sha256=digest, arch="unet",
                                    mpp=0.5)  # B's row, naming the same copy
        return stored, digest, fresh

    monkeypatch.setattr(registry, "registered_copy", b_registers_meanwhile)
    version = registry.register_checkpoint(tmp_path / "m.pt", "same-v1")
    assert version.path().is_file() and registry.sha256_file(version.path()) == version.sha256
    assert ModelVersion.objects.filter(name="same-v1").count() == 1
