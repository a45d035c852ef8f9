"""A model trained with --source deepliif was judged on DeepLIIF "held-out" fields that are the right halves
of the fields whose left halves it trained on. Such rows are now labelled "other half trained on" and count
in neither the pooled nor the equally weighted row; with nothing else held out, it is not evaluated.
The DeepLIIF fields here are SYNTHETIC stand-ins (read through a patched loader)."""

import dataclasses

import pytest

from analysis import datasets, promotion, registry
from analysis.training_card import card_markdown
from tests.analysis.test_registry import tiny_checkpoint
from tests.workers.test_promotion import NO_PARENT
from tests.annotations import client_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def deepliif_stand_in(monkeypatch):
    real_load = datasets.load_source

    def load(spec, mpp, **kwargs):
        if spec != "deepliif":
            return real_load(spec, mpp, **kwargs)
        return [dataclasses.replace(s, source="deepliif", name=f"deepliif-f{i}-val", split="val")
                for i, s in enumerate(datasets.synthetic_samples(3, "test", mpp, size=128))]

    monkeypatch.setattr(datasets, "load_source", load)


def register(media_root, name, sources):
    return registry.register_checkpoint(
        tiny_checkpoint(media_root / f"{name}.pt", seed=13), name, metrics={"x": 1},
        training_data={"synthetic": True, "lineage": NO_PARENT, "sources": [
            {"source": spec, "synthetic": spec == "synthetic", "fields": {"train": 4, "val": n}} for spec, n in sources]})


def test_deepliif_right_halves_are_shown_as_not_held_out_and_not_counted(deepliif_stand_in, media_root, personas):
    candidate = register(media_root, "with-deepliif-v1", [("synthetic", 2), ("deepliif", 3)])
    evaluation = promotion.do_evaluate(candidate)
    rows = {s["source"]: s for s in evaluation.per_source}
    assert evaluation.fields == 2  # the pooled row: the SYNTHETIC fields only
    assert evaluation.baseline_scores["n_truth"] == rows["synthetic"]["default"]["n_truth"]
    assert evaluation.candidate_scores["n_truth"] == rows["synthetic"]["candidate"]["n_truth"]
    assert rows["deepliif"]["fields"] == 3 and not rows["deepliif"]["held_out"] and rows["synthetic"]["held_out"]
    assert "other half trained on" in rows["deepliif"]["note"]

    table = client_for(personas["pathologist"]).get(f"/models/{candidate.pk}/").content.decode()
    table = table.split('class="table model-sources"')[1].split("</table>")[0]
    assert '<tr class="not-held-out"><td>deepliif (SYNTHETIC) <b>not held out</b>' in table
    assert "other half trained on" in table
    assert "Sources weighted equally" not in table  # one source left to count: no mean of one


def test_a_model_whose_only_validation_fields_are_other_halves_is_not_evaluated(deepliif_stand_in, media_root):
    candidate = register(media_root, "deepliif-only-v1", [("deepliif", 3)])
    with pytest.raises(promotion.PromotionError, match="none of the validation fields .* is held out"):
        promotion.do_evaluate(candidate)
    assert not candidate.evaluations.exists()


def test_the_model_card_says_deepliif_metrics_are_not_held_out():
    metric = {"f1": 0.5, "precision": 0.5, "recall": 0.5}
    card = {"name": "x", "created": "now", "torch_version": "2", "working_mpp": 0.5,
            "architecture": {"arch": "fcn", "backbone": "r18", "class_names": ["bg", "pos", "neg"]},
            "normalisation": {"mean": [0], "std": [1]},
            "training": {"device": "cpu", "steps": 1, "finished": True, "batch_size": 1, "crop": 1, "lr": 1,
                         "seed": 0, "seconds": 1, "augmentation": "none"},
            "training_data": {"synthetic": False, "sources": []},
            "evaluation": {"match_radius_um": 4, "nms_radius_um": 3},
            "metrics": {"deepliif": {"fields": 2, "synthetic": False, "detection": metric,
                                     "per_class": {"positive": metric, "negative": metric},
                                     "positive_pct_abs_error_mean": 1.0, "positive_pct_abs_error_max": 2.0}}}
    assert "| deepliif (right halves of its training fields: not held out) | 2 |" in card_markdown(card)
