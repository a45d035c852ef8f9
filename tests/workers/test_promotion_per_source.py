"""Promotion scores each held-out source on its own beside the pooled fields: pooled counts let the largest
source decide (BCData's 651 of 1019 cells). Data: SYNTHETIC folders standing in for the sources."""

import pytest

from analysis import promotion, registry
from analysis.models import ModelEvaluation
from tests.analysis.test_registry import tiny_checkpoint
from tests.workers.test_promotion import NO_PARENT
from tests.annotations import client_for
from tests.workers.synthetic_dataset import write_synthetic_dataset

pytestmark = pytest.mark.django_db(transaction=True)


def register(media_root, name, sources, seed=11):
    """A tiny model whose card records `sources` as {spec: (train, val)} fields."""
    return registry.register_checkpoint(
        tiny_checkpoint(media_root / f"{name}.pt", seed=seed), name, metrics={"x": 1},
        training_data={"synthetic": True, "lineage": NO_PARENT, "sources": [{"source": spec, "synthetic": True,
                                                        "fields": {"train": t, "val": v}}
                                                       for spec, (t, v) in sources.items()]})


@pytest.fixture
def two_sources(media_root, tmp_path):
    big = f"folder:{write_synthetic_dataset(tmp_path / 'big', train=1, val=3, size=96)}"
    small = f"folder:{write_synthetic_dataset(tmp_path / 'small', train=1, val=1, size=96)}"
    return register(media_root, "two-sources-v1", {big: (1, 3), small: (1, 1)}), big, small


def test_each_source_is_scored_apart_for_both_detectors(two_sources, personas):
    candidate, big, small = two_sources
    evaluation = promotion.do_evaluate(candidate, personas["pathologist"])
    assert [(s["source"], s["fields"]) for s in evaluation.per_source] == [(big, 3), (small, 1)]
    for s in evaluation.per_source:
        assert s["candidate"]["detector"] == "two-sources-v1" and s["default"]["detector"] == "classic"
        assert s["candidate"]["fields"] == s["default"]["fields"] == s["fields"]
        assert s["candidate"]["n_truth"] == s["default"]["n_truth"] > 0
    assert evaluation.fields == 4  # the pooled row: both sources' fields
    assert evaluation.baseline_scores["n_truth"] == sum(s["default"]["n_truth"] for s in evaluation.per_source)

    page = client_for(personas["pathologist"]).get(f"/models/{candidate.pk}/").content.decode()
    assert "Pooled (held-out fields)" in page and "Sources weighted equally (2)" in page
    assert big in page.split('class="table model-sources"')[1] and small in page.split('class="table model-sources"')[1]
    assert "held-out validation fields" in page and "not a leave-one-source-out evaluation" in page


def test_the_equal_weight_row_is_the_mean_of_the_sources():
    def score(f1, pct):
        return {"f1": {"detection": f1, "positive": f1, "negative": f1}, "positive_pct_abs_error": pct}

    evaluation = ModelEvaluation(fields=10, synthetic=False, candidate_scores=score(0.9, 2.0),
                                 baseline_scores=score(0.8, 4.0), per_source=[
        {"source": "bcdata", "fields": 9, "synthetic": False, "candidate": score(0.9, 2.0), "default": score(0.8, 4.0)},
        {"source": "shidc", "fields": 1, "synthetic": False, "candidate": score(0.5, 10.0),
         "default": score(0.7, 6.0)}])
    rows = promotion.source_rows(evaluation)
    assert [r.label for r in rows] == ["Pooled (held-out fields)", "bcdata", "shidc", "Sources weighted equally (2)"]
    detection_f1, *_, pct = rows[-1].cells
    assert detection_f1 == pytest.approx((0.7, 0.75, "default"))  # pooled said candidate; equally weighted, default
    assert pct == pytest.approx((6.0, 5.0, "default"))
    assert promotion.source_rows(ModelEvaluation(per_source=[])) == []


def test_an_evaluation_pooled_before_sources_were_scored_apart_does_not_count(two_sources, personas):
    candidate = two_sources[0]
    ModelEvaluation.objects.create(model_version=candidate, baseline="classic", baseline_sha256="", data="pooled",
                                   fields=4, candidate_scores={}, baseline_scores={})
    assert promotion.current_evaluation(candidate) is None
    with pytest.raises(promotion.PromotionError, match="evaluate it first"):
        promotion.do_promote(candidate, personas["admin"], "pooled looked better")
