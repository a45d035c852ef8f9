"""analysis.evaluation: pooled metrics on a hand-made case; the command writes a table naming SYNTHETIC data."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from analysis import evaluation
from analysis.detectors import Detections
from analysis.evaluation import EvalData, EvalField, score_detector


@dataclass
class Fixed:
    """A 'detector' that returns prepared points."""

    xy: np.ndarray
    labels: np.ndarray
    name: str = "fixed"

    def detect(self, rgb, mpp):
        return Detections(self.xy.astype(np.float32), self.labels.astype(np.int8), np.ones(len(self.labels), np.float32))


def test_hand_made_case():
    # Truth: 4 cells, 2 positive (1) and 2 negative (2).  mpp 0.5, radius 4 µm = 8 px.
    truth_xy = np.array([[10, 10], [50, 10], [10, 50], [50, 50]], float)
    truth_labels = np.array([1, 1, 2, 2])
    # Predictions: cell 0 right; cell 1 found 3 px off but called negative; cell 2 right;
    # cell 3 missed (the prediction is 20 px away = a false detection); one extra positive far away.
    pred_xy = np.array([[11, 10], [53, 10], [10, 49], [70, 50], [90, 90]], float)
    pred_labels = np.array([1, 2, 2, 2, 1])
    data = EvalData("hand", [EvalField("f", np.zeros((100, 100, 3), np.uint8), truth_xy, truth_labels, 0.5)], False)
    s = score_detector(Fixed(pred_xy, pred_labels), data, radius_um=4.0)
    assert (s.n_truth, s.n_pred) == (4, 5)
    # detection: 3 matched -> P 3/5, R 3/4, F1 6/9
    assert s.precision["detection"] == pytest.approx(3 / 5) and s.recall["detection"] == pytest.approx(3 / 4)
    assert s.f1["detection"] == pytest.approx(6 / 9)
    # positive: TP 1 (cell 0); predicted positives 2, true positives 2 -> F1 2/4
    assert s.f1["positive"] == pytest.approx(0.5)
    # negative: TP 1 (cell 2); predicted negatives 3, true 2 -> F1 2/5
    assert s.f1["negative"] == pytest.approx(0.4)
    assert s.class_accuracy == pytest.approx(2 / 3)
    assert s.false_discovery_rate == pytest.approx(2 / 5)
    assert s.false_positive_rate == pytest.approx(0.0)  # the matched truth-negative was called negative
    assert s.count_mae == 1.0
    assert s.positive_pct_abs_error == pytest.approx(abs(40 - 50))


def test_nothing_found_gives_zero_f1_not_nan():
    data = EvalData("hand", [EvalField("f", np.zeros((20, 20, 3), np.uint8), np.array([[5.0, 5.0]]),
                                       np.array([1]), 0.5)], False)
    s = score_detector(Fixed(np.zeros((0, 2)), np.zeros(0, int)), data)
    assert s.f1["detection"] == 0.0 and s.to_dict()["class_accuracy"] is None


def test_a_field_where_nothing_is_found_counts_at_its_worst_error():
    """It was left out of the positive-% mean and max: a detector that found nothing scored 0."""
    data = EvalData("hand", [EvalField("f", np.zeros((20, 20, 3), np.uint8), np.array([[5.0, 5.0], [15.0, 5.0]]),
                                       np.array([1, 1]), 0.5)], False)
    s = score_detector(Fixed(np.zeros((0, 2)), np.zeros(0, int)), data)
    assert s.positive_pct_abs_error == s.positive_pct_abs_error_max == 100.0 and s.fields_without_cells == 1


def test_class_metrics_read_the_pairs_left_after_the_ignore_zones():
    """A detection on a lymphocyte (ignored) shifted the matched pairs' indices: a right negative read as wrong."""
    truth_xy, truth_labels = np.array([[50.0, 50.0]]), np.array([2])
    pred_xy, pred_labels = np.array([[10.0, 10.0], [50.0, 51.0]]), np.array([1, 2])  # lymphocyte first
    field = EvalField("f", np.zeros((100, 100, 3), np.uint8), truth_xy, truth_labels, 0.5,
                      ignore_xy=np.array([[10.0, 11.0]]))
    s = score_detector(Fixed(pred_xy, pred_labels), EvalData("hand", [field], False))
    assert s.n_pred == 1 and s.class_accuracy == 1.0 and s.false_positive_rate == 0.0


@pytest.mark.django_db
def test_command_writes_table_naming_synthetic(tmp_path):
    call_command("evaluate_detector", "--data", "synthetic", "--synthetic-fields", "1", "--out", str(tmp_path))
    md = (tmp_path / "detectors.md").read_text()
    rows = json.loads((tmp_path / "detectors.json").read_text())["rows"]
    assert "SYNTHETIC" in md and rows[0]["synthetic"] and "SYNTHETIC" in rows[0]["data"]
    assert rows[0]["detector"] == "classic" and rows[0]["f1"]["detection"] > 0.5


@pytest.mark.django_db
def test_command_skips_missing_deepliif_and_refuses_bad_specs(tmp_path, monkeypatch):
    def missing():
        raise evaluation.EvaluationDataMissing("DeepLIIF data not found: no PNG fields in /nowhere")

    monkeypatch.setattr(evaluation, "deepliif_data", missing)
    with pytest.raises(CommandError, match="no evaluation data available.*DeepLIIF data not found"):
        call_command("evaluate_detector", "--data", "deepliif", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="unknown data"):
        call_command("evaluate_detector", "--data", "bogus", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="unknown detector"):
        call_command("evaluate_detector", "--detector", "nope", "--out", str(tmp_path))


def test_deepliif_heldout_is_exactly_the_halves_training_never_sees():
    from analysis import datasets

    if not datasets.DEEPLIIF_DIR.is_dir():
        pytest.skip("shared DeepLIIF data not available")
    whole = evaluation.load_data("deepliif")
    heldout = evaluation.load_data("deepliif:heldout")
    trained_on = [s for s in datasets.deepliif_samples() if s.split == "train"]
    assert "held-out" in heldout.name and not heldout.synthetic and heldout.compartment == "nucleus"
    assert [f.name for f in heldout.fields] == ["deepliif-Bladder1-val", "deepliif-Lung1-val"]
    # The two halves of each field partition its nuclei; the held-out images are the right halves.
    assert sum(len(f.xy) for f in heldout.fields) + sum(len(s.xy) for s in trained_on) == sum(
        len(f.xy) for f in whole.fields)
    for half, field_ in zip(heldout.fields, whole.fields):
        assert np.array_equal(half.rgb, field_.rgb[:, 256:])
    with pytest.raises(ValueError, match="unknown data"):
        evaluation.load_data("deepliif:left")
