"""A diverged training run (its network's outputs NaN or infinite, which analysis.postprocess refuses to read)
failed as "NonFiniteOutputs: non-finite probabilities (NaN or infinite) in image(s) 0"; now it fails as a
TrainingError that says the model diverged, at which step, and what to change."""

import pytest
import torch

from analysis.training import CARD_JSON, train
from analysis.training_config import TrainConfig, TrainingError
from tests.analysis.test_training import TINY


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("val_every, step", [(2, 2), (0, 4)])  # the mid-run evaluation, and the final one
def test_a_diverged_run_fails_as_a_training_error(tmp_path, val_every, step):
    config = TrainConfig(out_dir=str(tmp_path), **dict(TINY, lr=1e30, val_every=val_every))
    with pytest.raises(TrainingError, match=rf"the model diverged: its outputs are NaN or infinite at step {step} "
                                            r"\(lower the learning rate, now 1e\+30"):
        train(config)
    assert not (tmp_path / CARD_JSON).exists()  # no card for weights that cannot be read
