"""bench/reviewed_cut.py's cut fitted to reviewed cells (RESULTS-accuracy.md decision 11): the
measurement rests on it, so its rule is pinned here on small hand-made cases."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from reviewed_cut import field_error, fitted_cut  # noqa: E402


def misclassified(dab, positive, cut):
    return int(np.sum((np.asarray(dab) > cut) != np.asarray(positive)))


def test_no_reviewed_cell_keeps_the_automatic_cut():
    assert fitted_cut(np.array([]), np.array([], bool), 0.27) == 0.27


def test_reviewed_cells_that_agree_with_the_automatic_cut_leave_it_where_it_is():
    dab = np.array([0.1, 0.15, 0.4, 0.6])
    assert fitted_cut(dab, dab > 0.3, 0.3) == 0.3


def test_the_cut_moves_to_separate_the_reviewed_cells():
    # Two reviewed positives at 0.22 / 0.25 lie below the automatic cut 0.30: the fitted cut must sit
    # between the highest negative (0.18) and the lowest positive (0.22), as near 0.30 as possible.
    dab = np.array([0.05, 0.12, 0.18, 0.22, 0.25, 0.5])
    positive = np.array([False, False, False, True, True, True])
    cut = fitted_cut(dab, positive, 0.30)
    assert misclassified(dab, positive, cut) == 0
    assert cut == pytest.approx(0.20)


def test_overlapping_reviews_get_the_fewest_mistakes():
    dab = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.5])
    positive = np.array([False, True, False, True, True, True])  # one positive among the negatives
    cut = fitted_cut(dab, positive, 0.45)
    assert misclassified(dab, positive, cut) == 1
    assert all(misclassified(dab, positive, c) >= 1 for c in np.linspace(0, 0.6, 61))


def test_field_error_counts_only_the_counted_cells():
    dab = np.array([0.1, 0.5, 0.6, 0.9])
    counted = np.array([True, True, False, False])  # two cells in a lymphocyte's ignore zone
    truth = np.array([1, 2, 2, 2])  # 25 % positive
    assert field_error(dab, counted, 0.3, truth) == pytest.approx(25.0)  # stated 50 %
