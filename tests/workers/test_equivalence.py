"""Tiled detection through the pipeline tasks matches detection on the whole image at once.

Issue: "Detections merged from tiles match detection on the whole image at once, for a synthetic
slide small enough to run whole: at least 99% of points matched within 2 µm, with the same classes."

The slide is SYNTHETIC (analysis.synthetic, 1536×1536 px at 0.5 µm/px); the job runs split →
detect (map) → merge (reduce) through workers.tasks with small tiles, so there are many core
borders (7×7 tile grid at tile_px 256), and the whole level-0 image goes once through the same
ClassicDetector.
"""

import numpy as np
import pytest
from PIL import Image

from analysis.choices import JobStatus
from analysis.classic import adaptive_dab_threshold
from analysis.detection_store import open_store
from analysis.detectors import ClassicDetector
from analysis.matching import match_points
from slideio.slidefile import open_slide
from workers import queue
from workers.services import do_start_job

pytestmark = pytest.mark.django_db(transaction=True)

MPP = 0.5
RADIUS_UM = 2.0


def run_all(pending):
    while pending:
        queue.run(*pending.pop(0))


def whole_image_rgb(path) -> np.ndarray:
    """Level 0 at once, composited on white exactly as tiling.read_tile does for a tile."""
    slide = open_slide(path)
    width, height = slide.level_dimensions[0]
    region = slide.read_region((0, 0), 0, (width, height)).convert("RGBA")
    white = Image.new("RGBA", region.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, region).convert("RGB"))


@pytest.mark.parametrize("overlap_px, compartment", [(32, "membrane"), (64, "membrane"), (64, "nucleus")])
def test_merged_tile_detections_match_whole_image_detection(synthetic_slide, synthetic_slide_file, media_root,
                                                            overlap_px, compartment):
    params = {"tile_px": 256, "overlap_px": overlap_px, "batch_size": 8, "working_mpp": MPP,
              "compartment": compartment}
    with queue.collecting() as pending:
        job = do_start_job(synthetic_slide, detector="classic", parameters=params, research=True)  # any compartment
        run_all(pending)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    assert job.tiles_total >= 30  # many tiles, so many core borders to cross

    with open_store(media_root / job.result_file) as store:
        tiled = store.all()
    whole = ClassicDetector(compartment=compartment).detect(whole_image_rgb(synthetic_slide_file.path), MPP)
    assert len(whole) > 300 and len(tiled) > 300

    match = match_points(tiled.xy, whole.xy, RADIUS_UM / MPP)
    matched_whole = match.n_matched / len(whole)
    matched_tiled = match.n_matched / len(tiled)
    same_class = float(np.mean(tiled.labels[match.pred_idx] == whole.labels[match.truth_idx]))
    detail = (f"whole {len(whole)} points, tiled {len(tiled)}, matched {match.n_matched}; "
              f"whole-only {whole.xy[match.unmatched_truth].round(1).tolist()}, "
              f"tiled-only {tiled.xy[match.unmatched_pred].round(1).tolist()}")
    assert matched_whole >= 0.99, detail
    assert matched_tiled >= 0.99, detail
    assert same_class >= 0.99, detail
    assert match.distances.max() <= RADIUS_UM / MPP
    if compartment == "nucleus":
        # The adaptive cut is the slide's own, read at merge from every cell, not one per tile:
        # the same cut as the whole image's cells give.
        cut = adaptive_dab_threshold(whole.marker, "nucleus")
        assert job.summary["dab_threshold"] == pytest.approx(cut, abs=0.01)
    else:  # membrane (PD-L1): the constant cut, nothing read from the slide
        assert "dab_threshold" not in job.summary
