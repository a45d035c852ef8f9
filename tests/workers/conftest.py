import pytest

from analysis.synthetic_slide import write_pyramidal_tiff
from cases.services import IngestSource, do_ingest_slide


@pytest.fixture(scope="session")
def synthetic_slide_file(tmp_path_factory):
    """A SYNTHETIC pyramidal slide, 1536×1536 px at 0.5 µm/px, with ground-truth nuclei."""
    path = tmp_path_factory.mktemp("synthetic") / "synthetic-slide.tiff"
    return write_pyramidal_tiff(path, size=(1536, 1536), mpp=0.5, seed=7, tile=256, compression="zlib")


@pytest.fixture
def synthetic_slide(db, synthetic_slide_file, personas):
    path = synthetic_slide_file.path
    from pathlib import Path

    return do_ingest_slide([IngestSource(name=Path(path).name, path=Path(path))], case=personas["case"]).slide


@pytest.fixture
def white_slide(db, tmp_path):
    import numpy as np
    import tifffile

    path = tmp_path / "blank.tiff"
    tifffile.imwrite(path, np.full((1024, 1024, 3), 245, np.uint8), tile=(256, 256), photometric="rgb")
    from cases.services import IngestSource, do_ingest_slide

    return do_ingest_slide([IngestSource(name=path.name, path=path)], mpp=0.5).slide
