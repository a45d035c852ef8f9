"""NaN or infinite probabilities are an error, never fewer cells: a NaN pixel failed its whole pooling
window's peak test, and an all-NaN map gave no cell at all."""

import types

import numpy as np
import pytest
import torch

from analysis.postprocess import NonFiniteOutputs, extract_points, predict

MPP = 0.5


def three_cells(n_images=1):
    probs = torch.zeros(n_images, 3, 64, 64)
    probs[:, 0] = 1.0
    for y, x in [(10, 10), (10, 30), (40, 40)]:
        probs[:, 0, y, x], probs[:, 1, y, x] = 0.0, 1.0
    return probs


def test_clean_maps_give_their_cells():
    assert [len(p) for p in extract_points(three_cells(2), MPP)] == [3, 3]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_pixel_names_its_images(value):
    probs = three_cells(4)
    probs[1, :, 12, 12] = value  # next to a cell: it used to drop that cell silently
    probs[3, 2, 0, 0] = value  # in a class channel only
    with pytest.raises(NonFiniteOutputs) as raised:
        extract_points(probs, MPP)
    assert raised.value.images == [1, 3]


def test_an_all_nan_map_is_an_error_not_an_empty_tile():
    with pytest.raises(NonFiniteOutputs, match=r"image\(s\) 0"):
        extract_points(np.full((1, 3, 32, 32), np.nan, np.float32), MPP)


def test_predict_with_a_network_giving_nan_raises():
    class Broken(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 3, x.shape[2], x.shape[3]), float("nan"))

    config = types.SimpleNamespace(mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), mpp=MPP)
    with pytest.raises(NonFiniteOutputs):
        predict(Broken(), np.zeros((2, 32, 32, 3), np.uint8), config)
