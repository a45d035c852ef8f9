"""On held-out fields that mix markers (SYNTHETIC PD-L1-like fields and a Ki-67 source), the classic default
read the membrane on the Ki-67 fields too (the set's marker came out PD-L1): on DeepLIIF right halves an
error of 9.2 against 6.2 in the nucleus, which flattered the candidate. Each source now sets its own
compartment. The "Ki-67" fields here are SYNTHETIC stand-ins (read through a patched loader)."""

import pytest

from analysis import datasets, promotion, registry
from analysis.detectors import ClassicDetector
from analysis.evaluation import EvalData, EvalField, score_detector
from tests.analysis.test_registry import tiny_checkpoint
from tests.workers.test_promotion import NO_PARENT

pytestmark = pytest.mark.django_db(transaction=True)


def stand_in_ki67_fields(n=2):
    return datasets.synthetic_samples(n, "val", 0.5, size=128)


def test_the_classic_default_reads_the_nucleus_on_the_ki67_source_of_a_mixed_set(media_root, monkeypatch):
    real_load = datasets.load_source
    monkeypatch.setattr(datasets, "load_source",
                        lambda spec, mpp, **kw: stand_in_ki67_fields() if spec == "bcdata"
                        else real_load(spec, mpp, **kw))
    candidate = registry.register_checkpoint(
        tiny_checkpoint(media_root / "mixed.pt", seed=12), "mixed-v1", metrics={"x": 1},
        training_data={"synthetic": True, "lineage": NO_PARENT, "sources": [
            {"source": "synthetic", "synthetic": True, "fields": {"train": 4, "val": 2}},
            {"source": "bcdata", "synthetic": False, "fields": {"train": 20, "val": 2}}]})
    assert candidate.held_out_marker() == "PD-L1"  # mixed: the set as a whole is PD-L1's

    evaluation = promotion.do_evaluate(candidate)
    rows = {s["source"]: s for s in evaluation.per_source}
    fields = [EvalField(s.name, s.rgb, s.xy, s.labels, s.mpp, s.ignore_xy) for s in stand_in_ki67_fields()]

    def reading(score):
        return score["n_pred"], score["f1"], round(score["positive_pct_abs_error"], 9)

    scored = {c: score_detector(ClassicDetector(compartment=c), EvalData("x", fields, True)).to_dict()
              for c in ("nucleus", "membrane")}
    assert reading(scored["nucleus"]) != reading(scored["membrane"])  # the two readings differ on these fields
    assert reading(rows["bcdata"]["default"]) == reading(scored["nucleus"])
    assert (rows["bcdata"]["default_compartment"], rows["synthetic"]["default_compartment"]) == ("nucleus", "membrane")
    # The pooled row scores each field as its source's row did.
    assert evaluation.baseline_scores["n_pred"] == sum(s["default"]["n_pred"] for s in evaluation.per_source)
    assert evaluation.candidate_scores["n_pred"] == sum(s["candidate"]["n_pred"] for s in evaluation.per_source)
