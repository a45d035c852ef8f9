"""The split stage checks the slide (stored on it) and the detect stage keeps no point on glass."""

from pathlib import Path

import numpy as np
import pytest

from analysis import tissue
from analysis.choices import JobStatus
from analysis.detection_store import open_store
from analysis.detectors import Detections
from analysis.synthetic_slide import write_pyramidal_tiff
from cases.services import IngestSource, do_ingest_slide
from slideio.slidefile import open_slide
from workers import pipeline, queue
from workers.services import do_start_job

pytestmark = pytest.mark.django_db(transaction=True)


class EverywhereDetector:
    """A detector that 'finds' a nucleus every 12 px, glass included (what a bad model does)."""

    adaptive = False

    def detect(self, rgb, mpp):
        ys, xs = np.mgrid[6:rgb.shape[0]:12, 6:rgb.shape[1]:12]
        xy = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
        return Detections(xy=xy, labels=np.ones(len(xy), np.int8), scores=np.ones(len(xy), np.float32))


@pytest.fixture
def patchy_slide(personas, tmp_path):
    """A SYNTHETIC slide with 35 % tissue: most tiles hold both tissue and glass."""
    path = write_pyramidal_tiff(tmp_path / "patchy.tiff", size=(1536, 1536), mpp=0.5, seed=11, tile=256,
                                tissue_fraction=0.35, compression="zlib").path
    path = Path(path)
    return do_ingest_slide([IngestSource(name=path.name, path=path)], case=personas["case"]).slide


def run(slide):
    with queue.collecting() as pending:
        job = do_start_job(slide, detector="classic", parameters={"batch_size": 4, "tile_px": 256})
        while pending:
            queue.run(*pending.pop(0))
    job.refresh_from_db()
    return job


def test_split_records_the_slide_check(synthetic_slide):
    job = run(synthetic_slide)
    assert job.status == JobStatus.DONE, job.error
    synthetic_slide.refresh_from_db()
    assert synthetic_slide.qc_status == "passed"
    assert {f["name"] for f in synthetic_slide.qc["findings"]} == {"brightfield", "tissue", "haematoxylin",
                                                                     "stain_colours", "dab"}
    assert synthetic_slide.qc["tissue_threshold_od"] > 0


def test_detections_never_fall_on_glass(patchy_slide, media_root, monkeypatch):
    monkeypatch.setattr(pipeline, "load_job_detector", lambda job, compartment: EverywhereDetector())
    job = run(patchy_slide)
    assert job.status == JobStatus.DONE, job.error
    store = open_store(media_root / job.result_file)
    xy = store.all().xy
    patchy_slide.refresh_from_db()
    rgb = np.asarray(open_slide(patchy_slide.path).read_region((0, 0), 0, (patchy_slide.width,
                                                                           patchy_slide.height)))[..., :3]
    on = tissue.on_tissue(rgb, xy, patchy_slide.qc["tissue_threshold_od"])
    assert len(xy) > 500 and on.all(), f"{(~on).sum()} of {len(xy)} points on glass"
    # ... while the grid covered the glass of those tiles too: points were dropped, not never made.
    grid_points = (patchy_slide.width // 12) * (patchy_slide.height // 12)
    assert len(xy) < 0.6 * grid_points
