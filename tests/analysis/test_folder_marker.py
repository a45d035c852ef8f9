"""A model's marker is that of the fields it was measured on, an exported folder's included: a model trained
on a Ki-67 project's export (manifest "marker": "Ki67") was registered, promoted and activatable as a PD-L1
model, because every folder source was taken for PD-L1. The manifest's marker is read now
(analysis.datasets.source_marker) and recorded in the model card; a folder whose manifest records none is
refused wherever the marker matters. Data: random pixels (not tissue)."""

import json
import shutil

import numpy as np
import pytest
from skimage import io

from analysis import datasets, promotion, registry
from analysis.choices import Marker, ModelStatus
from analysis.models import ModelVersion
from tests.analysis.test_registry import tiny_checkpoint

pytestmark = pytest.mark.django_db


def export(root, marker="Ki67"):
    """A folder as annotations.dataset exports a project (manifest "marker" = the project's; None: none)."""
    root.mkdir(parents=True)
    fields = []
    for n, (fid, split) in enumerate((("field-1-session-1", "train"), ("field-2-session-2", "train"),
                                      ("field-3-session-3", "val"))):
        rgb = np.random.default_rng(n).integers(0, 255, (96, 96, 3), dtype=np.uint8)
        io.imsave(root / f"{fid}.png", rgb, check_contrast=False)
        (root / f"{fid}.csv").write_text("x,y,label\n20,20,positive\n60,50,negative\n")
        fields.append({"id": fid, "image": f"{fid}.png", "points": f"{fid}.csv", "mpp": 0.5, "split": split})
    manifest = {"format": "pdl1-point-dataset", "version": 1, "synthetic": False, "licence": "internal",
                "fields": fields}
    if marker is not None:
        manifest["marker"] = marker
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_a_model_trained_on_a_ki67_export_is_a_ki67_model(tmp_path, media_root):
    import torch
    from django.contrib.auth import get_user_model

    from analysis.training import train
    from analysis.training_config import TrainConfig

    torch.set_num_threads(1)
    data = export(tmp_path / "export")
    spec = f"folder:{data}"
    # what workers.training.run_training builds for a run from the annotation pages
    result = train(TrainConfig(out_dir=str(tmp_path / "run"), sources=(spec,), steps=2, batch_size=2, crop=64,
                               checkpoint_every=1, warmup_steps=1, progress=False, device="cpu"))
    (card_source,) = result.card["training_data"]["sources"]
    assert card_source["marker"] == Marker.KI67  # recorded with the model
    version = registry.register_checkpoint(result.model_path, "ki67-proj-v1", metrics=result.card["metrics"],
                                           training_data=result.card["training_data"])
    assert version.held_out_marker() == promotion.evaluation_marker(version) == Marker.KI67
    assert promotion.source_compartment(spec) == "nucleus"

    evaluation = promotion.do_evaluate(version)  # compared with the Ki-67 default, classic reading the nucleus
    assert evaluation.marker == Marker.KI67 and evaluation.baseline == "classic"
    assert [s["default_compartment"] for s in evaluation.per_source] == ["nucleus"]
    promoter = get_user_model().objects.create_user("promoter")
    promotion.do_promote(version, promoter, "better than classic on the project's held-out fields")
    version.refresh_from_db()
    assert version.status == ModelStatus.CLINICAL
    with pytest.raises(ValueError, match="another marker than PD-L1"):
        version.check_activation("", Marker.PDL1)
    version.activate("", Marker.KI67)
    assert registry.default_detector_name(None, Marker.KI67) == "ki67-proj-v1"
    assert registry.default_detector_name(None, Marker.PDL1) == "classic"

    shutil.rmtree(data)  # the export removed (or made again) later: the card's marker still holds
    version = ModelVersion.objects.get(pk=version.pk)
    assert version.held_out_marker() == Marker.KI67 and version.marker_refusal(Marker.KI67) == ""


def test_a_pd_l1_export_stays_a_pd_l1_model(tmp_path):
    spec = f"folder:{export(tmp_path / 'pd', marker=Marker.PDL1)}"
    assert datasets.source_marker(spec) == Marker.PDL1 and promotion.source_compartment(spec) == "membrane"
    (entry,) = datasets.describe(datasets.load_source(spec, 0.5))
    assert entry["marker"] == Marker.PDL1


def test_a_folder_whose_manifest_records_no_marker_is_refused_where_the_marker_matters(tmp_path, media_root):
    data = export(tmp_path / "old-export", marker=None)
    spec = f"folder:{data}"
    with pytest.raises(datasets.UnknownMarker, match=rf"{data}.*manifest.json records no 'marker'"):
        datasets.source_marker(spec)
    with pytest.raises(datasets.UnknownMarker, match="'marker'"):
        promotion.source_compartment(spec)  # the compartment is not guessed
    samples = datasets.load_source(spec, 0.5)  # training still reads it: points need no marker
    (entry,) = datasets.describe(samples)
    assert "marker" not in entry  # and the card says nothing it does not know

    version = registry.register_checkpoint(tiny_checkpoint(media_root / "old.pt"), "old-export-v1",
                                           metrics={spec: {"fields": 1}},
                                           training_data={"synthetic": False, "sources": [entry]})
    with pytest.raises(datasets.UnknownMarker, match="'marker'"):
        version.held_out_marker()
    with pytest.raises(promotion.PromotionError, match=rf"{data}.*'marker'.*cannot be compared"):
        promotion.do_evaluate(version)
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelStatus.CLINICAL)  # as an older release left it
    version.refresh_from_db()
    for marker in (Marker.PDL1, Marker.KI67):
        with pytest.raises(ValueError, match="'marker'"):
            version.check_activation("", marker)
        assert "unknown marker" in version.marker_refusal(marker)


def test_a_manifest_marker_that_is_no_marker_is_a_dataset_error(tmp_path):
    spec = f"folder:{export(tmp_path / 'bad', marker='CD8')}"
    with pytest.raises(datasets.DatasetError, match="'marker' must be one of"):
        datasets.load_source(spec, 0.5)
