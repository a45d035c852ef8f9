"""evaluate_detector on a checkpoint whose network outputs NaN (a diverged training run) ended in the traceback of
analysis.postprocess.NonFiniteOutputs ("non-finite probabilities ... in image(s) 0"); now it stops with a
CommandError naming the checkpoint, and writes no table."""

import io
import re

import pytest
import torch
from django.core.management import CommandError, call_command

from analysis.nets import DetectorConfig, build_detector, save_checkpoint


@pytest.mark.django_db
def test_a_checkpoint_with_nan_outputs_is_named(tmp_path):
    model = build_detector("unet", unet_width=4)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    path = tmp_path / "diverged.pt"
    save_checkpoint(path, model, DetectorConfig(arch="unet", unet_width=4, mpp=0.5))
    out = tmp_path / "table"
    with pytest.raises(CommandError, match=rf"the checkpoint of detector '{re.escape(str(path))}' \(sha256 \w{{12}}\) produced NaN or "
                                           r"infinite outputs on synthetic: its weights are broken"):
        call_command("evaluate_detector", "--detector", str(path), "--data", "synthetic", "--synthetic-fields", "1",
                     "--out", str(out), stdout=io.StringIO(), stderr=io.StringIO())
    assert not out.exists()
