"""The check before scoring (analysis.slide_qc) and the per-pixel tissue filter of tile detections."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from analysis import slide_qc, tissue
from analysis.synthetic import render_field
from analysis.synthetic_slide import write_pyramidal_tiff
from slideio.slidefile import open_slide
from tests.conftest import shared_slide


def check(path, mpp=0.5):
    mask = tissue.tissue_mask(open_slide(str(path)), slide_mpp=mpp, keep_image=True)
    return slide_qc.check_mask(mask)


def findings(qc):
    return {f.name: f.passed for f in qc.findings}


@pytest.fixture(scope="module")
def synthetic_ihc(tmp_path_factory):
    path = tmp_path_factory.mktemp("qc") / "synthetic.tiff"
    write_pyramidal_tiff(path, size=(1536, 1536), mpp=0.5, seed=7, tile=256, compression="zlib")
    return path


def test_an_h_dab_slide_passes(synthetic_ihc):
    qc = check(synthetic_ihc)
    assert qc.passed, [f.message for f in qc.failures]
    assert set(findings(qc)) == {"brightfield", "tissue", "haematoxylin", "stain_colours", "dab"}
    assert qc.as_dict()["passed"] is True


def test_real_pdl1_ihc_field_passes():
    from tests.conftest import SHARED

    path = SHARED / "ihc" / "ROI_7.png"
    if not path.exists():
        pytest.skip("shared data not available")
    assert check(path).passed


def test_a_fluorescence_scan_is_not_brightfield():
    qc = check(shared_slide("test3-DAPI-2-387.ndpi"), mpp=None)
    assert not qc.passed
    assert findings(qc)["brightfield"] is False
    assert "fluorescence" in qc.failures[0].message


def test_an_he_slide_is_not_dab_ihc():
    qc = check(shared_slide("CMU-1-Small-Region.svs"))
    assert not qc.passed
    assert findings(qc)["stain_colours"] is False and findings(qc)["dab"] is False
    assert any("H&E" in f.message for f in qc.failures)


def test_an_rgb_test_pattern_fails(tmp_path):
    image = np.full((1024, 1024, 3), 255, np.uint8)
    for i, colour in enumerate([(255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]):
        image[100 + 160 * i:220 + 160 * i, 100:900] = colour
    path = tmp_path / "pattern.png"
    Image.fromarray(image).save(path)
    qc = check(path)
    assert not qc.passed and findings(qc)["stain_colours"] is False


def test_blank_glass_has_no_tissue(tmp_path):
    path = tmp_path / "blank.tiff"
    tifffile.imwrite(path, np.full((1024, 1024, 3), 245, np.uint8), tile=(256, 256), photometric="rgb")
    qc = check(path)
    assert findings(qc) == {"brightfield": True, "tissue": False}


def test_haematoxylin_only_has_no_dab():
    rgb = np.full((64, 64, 3), 250, np.uint8)
    rgb[16:48, 16:48] = (120, 110, 190)  # haematoxylin blue-purple, no brown anywhere
    tissue_px = np.zeros((64, 64), bool)
    tissue_px[16:48, 16:48] = True
    qc = slide_qc.check_image(rgb, np.ones((64, 64), bool), tissue_px)
    assert findings(qc) == {"brightfield": True, "tissue": True, "haematoxylin": True, "stain_colours": True,
                            "dab": False}


# --- per-pixel tissue filter ------------------------------------------------------------------------

def test_points_on_glass_are_dropped_points_on_tissue_kept():
    field = render_field(size=(256, 256), mpp=0.5, seed=1)
    rgb = np.full((512, 512, 3), 242, np.uint8)  # glass on the right half
    rgb[:256, :256] = field.rgb
    rgb[256:, :256] = field.rgb
    on_nuclei = np.asarray(field.points, np.float64)[:20]
    glass = np.array([[300.0, 40.0], [480.0, 480.0], [270.0, 255.0]])
    kept = tissue.on_tissue(rgb, np.concatenate([on_nuclei, glass]), threshold_od=0.2)
    assert kept[:len(on_nuclei)].all()
    assert not kept[len(on_nuclei):].any()


def test_black_no_data_counts_as_glass():
    rgb = np.zeros((128, 128, 3), np.uint8)
    rgb[:, 64:] = (150, 110, 160)
    kept = tissue.on_tissue(rgb, np.array([[10.0, 10.0], [100.0, 10.0]]))
    assert kept.tolist() == [False, True]
