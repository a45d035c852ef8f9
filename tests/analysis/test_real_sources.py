"""The real ihc_train sources (SHIDC-B-Ki-67, BCData): reading, splits, lymphocytes kept apart,
the ignore zone in the metrics, lymphocytes as background in training, the adaptive DAB cut."""

import numpy as np
import pytest
from PIL import Image

from analysis import datasets
from analysis.classic import (ADAPTIVE, ADAPTIVE_RULE, DEFAULT_DAB_THRESHOLD, ClassicParams, adaptive_cut,
                              adaptive_dab_threshold, detect_classic)
from analysis.matching import evaluate, ignored_predictions


def write_source(root, kind, rows_by_image):
    folder = root / datasets.IHC_TRAIN[kind][0]
    folder.mkdir(parents=True)
    for stem, rows in rows_by_image.items():
        Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(folder / f"{stem}.png")
        (folder / f"{stem}.csv").write_text("x,y,label\n" + "".join(f"{r}\n" for r in rows))
    return root


def test_lymphocytes_are_kept_apart_and_split_is_by_image(tmp_path):
    root = write_source(tmp_path, "shidc", {
        "p1_0300_2": ["5,5,positive", "10,10,negative", "20,20,lymphocyte"],
        "p2_0191_1": ["7,8,negative"],  # a validation image
    })
    samples = {s.name: s for s in datasets.ihc_train_samples("shidc", root)}
    train, val = samples["shidc-p1_0300_2"], samples["shidc-p2_0191_1"]
    assert (train.split, val.split) == ("train", "val")
    assert train.labels.tolist() == [1, 2] and train.ignore_xy.tolist() == [[20.0, 20.0]]
    assert train.mpp == datasets.IHC_TRAIN["shidc"][1] and not train.synthetic and "non-commercial" in train.licence
    # Resampling to the working resolution moves the lymphocytes with the image.
    half = datasets.resample(train, train.mpp * 2)
    assert half.ignore_xy[0] == pytest.approx([(20 + 0.5) / 2 - 0.5] * 2)


def test_overlapping_shidc_pairs_stay_on_one_side():
    val = set(datasets.IHC_TRAIN_VAL["shidc"])
    for a, b in (("p1_0300_2", "p1_0317_1"), ("p1_0299_1", "p1_0317_7")):
        assert (a in val) == (b in val)


def test_bad_rows_are_all_reported(tmp_path):
    root = write_source(tmp_path, "bcdata", {"1": ["5,5,positive", "5,5,macrophage", "500,5,negative"]})
    with pytest.raises(datasets.DatasetError) as err:
        datasets.ihc_train_samples("bcdata", root)
    assert "macrophage" in str(err.value) and "outside" in str(err.value)


def test_real_sources_when_present():
    if not (datasets.IHC_TRAIN_DIR / "shidc_ki67").is_dir():
        pytest.skip("shared ihc_train data not available")
    shidc, bcdata = datasets.ihc_train_samples("shidc"), datasets.ihc_train_samples("bcdata")
    assert (len(shidc), len(bcdata)) == (13, 25)
    assert sum(len(s.ignore_xy) for s in shidc) == 63 and sum(len(s.ignore_xy) for s in bcdata) == 0
    assert sum(len(s.labels) for s in shidc + bcdata) == 1572 + 2881
    assert datasets.parse_source("shidc") == ("shidc", None)


def test_detection_on_a_lymphocyte_is_ignored_not_a_false_tumour_cell():
    truth_xy, truth_labels = np.array([[10.0, 10.0], [50.0, 10.0]]), np.array([1, 2])
    lymphocytes = np.array([[90.0, 90.0], [52.0, 12.0]])
    pred_xy = np.array([[10.0, 10.0], [51.0, 10.0], [90.0, 91.0], [150.0, 150.0]])
    pred_labels = np.array([1, 2, 2, 2])
    # The detection on the tumour cell next to a lymphocyte still matches the tumour cell;
    # the one on the lone lymphocyte is dropped; the one on nothing stays a false detection.
    assert ignored_predictions(pred_xy, truth_xy, lymphocytes, 8.0).tolist() == [False, False, True, False]
    plain = evaluate(pred_xy, pred_labels, truth_xy, truth_labels, mpp=0.5)
    ignored = evaluate(pred_xy, pred_labels, truth_xy, truth_labels, mpp=0.5, ignore_xy=lymphocytes)
    assert (plain.detection.fp, ignored.detection.fp) == (2, 1)
    assert ignored.detection.tp == 2 and ignored.positive_pct_pred == pytest.approx(100 / 3)


def test_lymphocytes_are_background_in_the_training_loss():
    import torch

    from analysis.training_batches import far_background_term

    logits = torch.zeros(1, 3, 32, 32)
    logits[0, 1] = 5.0  # the network says "positive" everywhere
    points = torch.zeros(1, 32, 32, dtype=torch.long)
    points[0, 16, 16] = 1
    lymph = np.zeros((1, 32, 32), bool)
    lymph[0, 16, 19] = True  # 3 px from the click: inside its radius, so not far background
    without = far_background_term(logits, points, radius_px=6.0)
    with_lymph = far_background_term(logits, points, radius_px=6.0, not_tumour=lymph, not_tumour_radius_px=2.0)
    assert float(with_lymph) > float(without)


def test_make_batch_marks_lymphocytes_apart_from_clicks():
    from types import SimpleNamespace

    from analysis.training_batches import make_batch
    from analysis.training_config import TrainConfig

    rgb = np.full((64, 64, 3), 128, np.uint8)
    sample = SimpleNamespace(rgb=rgb, xy=np.array([[10.0, 10.0]]), labels=np.array([1]),
                             ignore_xy=np.array([[40.0, 40.0]]))
    config = TrainConfig(out_dir="unused", crop=64, batch_size=2, stain_sigma=0, stain_bias=0)
    _, points, background = make_batch([[sample]], config, np.random.default_rng(0))
    assert int((points > 0).sum()) == 2 and int(background.sum()) == 2  # one click, one lymphocyte each
    assert not (background & (points.numpy() > 0)).any()


def test_adaptive_cut_follows_the_image_and_never_drops_below_its_floor():
    rng = np.random.default_rng(0)
    negatives, positives = rng.normal(0.15, 0.02, 300), rng.normal(0.9, 0.1, 200)
    cut = adaptive_dab_threshold(np.r_[negatives, positives], "nucleus")
    assert 0.19 < cut < 0.3  # where the negatives end, far below the positives
    floor = ADAPTIVE_RULE["nucleus"][1]
    assert adaptive_dab_threshold(rng.normal(0.03, 0.01, 300), "nucleus") == floor  # a field without positives
    assert adaptive_dab_threshold([0.5, 0.9], "membrane") == ADAPTIVE_RULE["membrane"][1]  # too few cells


def test_weakly_stained_positives_are_not_lost_to_a_cut_between_weak_and_strong():
    # SHIDC-like: positives of every intensity.  An Otsu cut (the former rule) falls between the weak
    # and the strong positives and calls every weak one negative; the cut read from the negative
    # population keeps them positive.
    rng = np.random.default_rng(1)
    negatives, weak, strong = rng.normal(0.15, 0.02, 300), rng.normal(0.35, 0.03, 100), rng.normal(1.1, 0.1, 100)
    cut = adaptive_dab_threshold(np.r_[negatives, weak, strong], "nucleus")
    assert (weak > cut).mean() > 0.95 and (negatives > cut).mean() < 0.02


def test_adaptive_rules_per_compartment():
    # Nuclear markers: the negative-population rule chosen by leave-one-source-out; the membrane
    # (PD-L1, opt-in only) keeps Otsu: nothing labelled has measured a change there.
    assert ADAPTIVE_RULE["nucleus"] == ("negative_population", 0.20, 0.50)
    assert ADAPTIVE_RULE["membrane"] == ("otsu", 0.10, 0.60)
    # Where the negatives end: median + 2.5 robust spreads ((median - 25th percentile) / 0.674), the
    # k chosen leave-one-source-out (bench/classic_loso.py; 3 before the second round).
    negatives = np.r_[np.full(40, 0.10), np.full(40, 0.1674), np.full(20, 0.30)]  # median 0.1674, q25 0.10
    assert adaptive_dab_threshold(negatives, "nucleus") == pytest.approx(0.1674 + 2.5 * 0.1, abs=1e-3)
    values = np.r_[np.full(50, 0.05), np.full(50, 0.45)]
    assert 0.10 <= adaptive_dab_threshold(values, "membrane") < 0.45  # Otsu: between the two, never below 0.10
    with pytest.raises(ValueError):
        adaptive_cut(values, "median", 0.1, 0.6)


@pytest.mark.parametrize("kind, min_f1, max_error", [("bcdata", 0.75, 5.0), ("shidc", 0.63, 6.0)])
def test_classic_default_on_real_ki67_fields(kind, min_f1, max_error):
    """The shipped nuclear defaults on every field of a real source (bench/RESULTS-accuracy.md; these
    are the defaults' numbers on sources their choice saw, not leave-one-source-out numbers).
    Former defaults: BCData F1 0.671, 8.6 points; SHIDC 0.653, 9.5 points."""
    from analysis import evaluation
    from analysis.detectors import ClassicDetector

    try:
        data = evaluation.load_data(kind)
    except evaluation.EvaluationDataMissing:
        pytest.skip("shared ihc_train data not available")
    score = evaluation.score_detector(ClassicDetector(compartment="nucleus"), data)
    assert score.f1["detection"] >= min_f1
    assert score.positive_pct_abs_error <= max_error


def test_classic_records_the_cut_it_applied():
    from skimage.data import immunohistochemistry

    rgb = immunohistochemistry()[:256, :256]
    fixed = detect_classic(rgb, 0.5, ClassicParams(compartment="nucleus", dab_threshold=0.15))
    adaptive = detect_classic(rgb, 0.5, ClassicParams(compartment="nucleus"))  # nuclear default: adaptive
    assert fixed.dab_threshold == DEFAULT_DAB_THRESHOLD["nucleus"]
    assert adaptive.dab_threshold >= fixed.dab_threshold
    assert np.array_equal(adaptive.labels == 1, adaptive.dab_nucleus > adaptive.dab_threshold)


def test_default_cut_is_adaptive_for_nuclear_markers_and_constant_for_membrane():
    # PD-L1 counts membrane staining of any intensity: no cut between weak and strong positives.
    assert ClassicParams(compartment="nucleus").cut == ADAPTIVE
    assert ClassicParams(compartment="membrane").cut == DEFAULT_DAB_THRESHOLD["membrane"]
    assert ClassicParams(compartment="membrane", dab_threshold=ADAPTIVE).cut == ADAPTIVE
