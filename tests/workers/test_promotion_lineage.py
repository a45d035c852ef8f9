"""A model fine-tuned (--init-from) from a predecessor may have weights that saw a "held-out" field through
it: the split moved between exports, or the predecessor trained on other data. Cards now record the fields
each model trained on and what its starting weights' chain trained on; promotion refuses a held-out field any
of them trained on, and refuses when the chain's training fields are unknown. Data: SYNTHETIC."""

import json
import shutil

import pytest

from analysis import datasets, promotion, registry
from analysis.models import ModelVersion
from analysis.training import train
from analysis.training_card import Lineage, lineage_of
from analysis.training_config import TrainConfig
from tests.analysis.test_registry import tiny_checkpoint
from tests.workers.synthetic_dataset import write_synthetic_dataset
from tests.workers.test_promotion import NO_PARENT

pytestmark = pytest.mark.django_db(transaction=True)
TINY = dict(backbone="resnet18", steps=2, batch_size=2, crop=64, warmup_steps=1, checkpoint_every=2, progress=False)


def test_a_card_lists_the_fields_each_source_trained_on():
    samples = datasets.synthetic_samples(2, "train", 0.5, size=64) + datasets.synthetic_samples(1, "val", 0.5, size=64)
    (entry,) = datasets.describe(samples)
    assert entry["train_fields"] == sorted(s.name for s in samples if s.split == "train")
    assert entry["val_fields"] == [samples[-1].name]


def card(name, train_fields=None, lineage=None, initialised_from=None):
    source = {"source": "db:PD-L1", "fields": {"train": 2, "val": 1}}
    if train_fields is not None:
        source["train_fields"] = train_fields
    data = {"sources": [source]} | ({"lineage": lineage} if lineage is not None else {})
    return {"name": name, "training": {"initialised_from": initialised_from}, "training_data": data}


def test_the_lineage_unites_the_chain_or_says_why_it_is_unknown():
    assert lineage_of(None, None) == Lineage()
    assert "no model card beside p.pt" in lineage_of("p.pt", None).unchecked
    assert "does not list the fields it trained on" in lineage_of("p.pt", card("parent")).unchecked
    grand = Lineage("g.pt", ("grand",), ("field-1-session-1",)).to_dict()
    chain = lineage_of("p.pt", card("parent", ["field-2-session-3"], grand))
    parents_source = {"model": "parent", "source": "db:PD-L1", "synthetic": False, "licence": ""}
    assert chain == Lineage("p.pt", ("parent", "grand"), ("field-1-session-1", "field-2-session-3"), "",
                            licences=(parents_source,))  # what each model of the chain learnt from stays with it
    old = lineage_of("p.pt", card("parent", ["field-2-session-3"], initialised_from="older.pt"))
    assert "parent was fine-tuned from older.pt" in old.unchecked
    unknown = Lineage("g.pt", ("grand",), (), "no model card beside g.pt").to_dict()
    assert lineage_of("p.pt", card("parent", [], unknown)).unchecked == "via parent: no model card beside g.pt"


def candidate_with(lineage, val=("field-7-session-70",)):
    return ModelVersion(name="child-v1", training_data={"lineage": lineage, "sources": [
        {"source": "db:PD-L1", "fields": {"train": 1, "val": len(val)}, "train_fields": ["field-8-session-80"],
         "val_fields": list(val)}]})


def test_a_held_out_field_the_chain_trained_on_is_refused():
    promotion.check_lineage(candidate_with(NO_PARENT), ["field-7-session-70"])
    parent = Lineage("p.pt", ("parent",), ("field-7-session-70",)).to_dict()
    with pytest.raises(promotion.PromotionError, match=r"trained on in its lineage \(child-v1 <- parent\)"):
        promotion.check_lineage(candidate_with(parent), ["field-7-session-70"])
    other_annotator = Lineage("p.pt", ("parent",), ("field-7-session-71",)).to_dict()  # the same field
    with pytest.raises(promotion.PromotionError, match="trained on in its lineage"):
        promotion.check_lineage(candidate_with(other_annotator), ["field-7-session-70"])
    unknown = Lineage("p.pt", ("p.pt",), (), "no model card beside p.pt").to_dict()
    with pytest.raises(promotion.PromotionError, match=r"lineage of child-v1 \(fine-tuned from p.pt\) cannot be checked"):
        promotion.check_lineage(candidate_with(unknown), ["field-7-session-70"])


def test_a_card_from_before_lineage_was_recorded_is_read_beside_the_registered_file(media_root):
    def registered(name, training):
        version = registry.register_checkpoint(tiny_checkpoint(media_root / f"{name}.pt", seed=len(name)), name,
                                               metrics={"x": 1}, training_data={"sources": []})
        if training is not None:
            card_file = version.path().with_suffix(".json")
            card_file.write_text(json.dumps({"training": training}))
        return version

    promotion.check_lineage(registered("scratch-v1", {"initialised_from": None}), [])
    with pytest.raises(promotion.PromotionError, match="from before the fields of the models it descends from"):
        promotion.check_lineage(registered("tuned-v1", {"initialised_from": "/runs/a/model.pt"}), [])
    with pytest.raises(promotion.PromotionError, match="does not say whether it was fine-tuned"):
        promotion.check_lineage(registered("cardless-v1", None), [])


def test_a_model_fine_tuned_after_the_split_moved_is_not_evaluated(tmp_path, media_root):
    """The predecessor trained on a field that the later export holds out: the fine-tuned model may not be
    promoted on it, while the same data trained from scratch may."""
    first = write_synthetic_dataset(tmp_path / "first", train=2, val=1, size=96)
    parent = train(TrainConfig(out_dir=str(tmp_path / "parent"), sources=(f"folder:{first}",), name="parent", **TINY))
    moved = tmp_path / "moved"
    shutil.copytree(first, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    for entry in manifest["fields"]:  # a training field of the parent is held out now, the old val field trained
        entry["split"] = "val" if entry["id"] == "synthetic-1000000" else "train"
    (moved / "manifest.json").write_text(json.dumps(manifest))

    def child(name, init_from):
        run = train(TrainConfig(out_dir=str(tmp_path / name), sources=(f"folder:{moved}",), name=name,
                                init_from=init_from, **TINY))
        return registry.register_checkpoint(run.model_path, name, metrics=run.card["metrics"],
                                            training_data=run.card["training_data"])

    tuned = child("tuned-v1", str(parent.model_path))
    assert tuned.training_data["lineage"]["models"] == ["parent"]
    assert "synthetic-1000000" in tuned.training_data["lineage"]["trained_fields"]
    assert "- Lineage: parent, 2 training field(s) recorded" in (tmp_path / "tuned-v1" / "MODEL_CARD.md").read_text()
    assert promotion.lineage_text(tuned).startswith("fine-tuned from parent; the 2 field(s) they trained on")
    with pytest.raises(promotion.PromotionError, match=r"synthetic-1000000\) were trained on in its lineage"):
        promotion.do_evaluate(tuned)
    assert promotion.do_evaluate(child("scratch-v1", None)).fields == 1


def test_the_review_page_says_what_the_weights_started_from(personas, media_root):
    from tests.annotations import client_for

    version = registry.register_checkpoint(tiny_checkpoint(media_root / "page.pt", seed=21), "page-v1",
                                           metrics={"x": 1}, training_data={"sources": [], "lineage": NO_PARENT})
    page = client_for(personas["pathologist"]).get(f"/models/{version.pk}/").content.decode()
    assert "Starting weights: trained from scratch (no --init-from)." in page
