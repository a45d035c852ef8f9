"""The report's slide pictures show what the scores count: detections outside the drawn regions that count
are grey on the dot map and absent from the heatmap (they used to be plotted like counted cells, so the
heatmap included cells the TPS leaves out)."""

import numpy as np
import pytest

from analysis.labels import LABEL_RGB, NEGATIVE, POSITIVE
from cases.report_pdf import EXCLUDED_RGB, overlay_images
from tests.viewer import job_with_result
from viewer.models import Region

pytestmark = pytest.mark.django_db


def colour(a, rgb):
    return (a == rgb).all(axis=-1)


def test_excluded_cells_are_grey_and_out_of_the_heatmap(personas, media_root):
    job = job_with_result(personas["case"], n=4000, seed=9)  # 8000 x 6000 px: a 700 x 525 thumbnail
    plain_dots, plain_heat = overlay_images(job.slide, job)
    Region.objects.create(slide_id=job.slide_id, drawn_on=job, version=1, author=personas["pathologist"],
                          kind="exclude", vertices=[[0, 0], [4000, 0], [4000, 6000], [0, 6000]])
    dots, heat = (np.asarray(image).astype(int) for image in overlay_images(job.slide, job))
    left, right = slice(5, 330), slice(370, 695)  # away from the outline at x = 350
    for rgb in (LABEL_RGB[POSITIVE], LABEL_RGB[NEGATIVE]):
        assert not colour(dots[5:-5, left], rgb).any() and colour(dots[:, right], rgb).any()
    assert colour(dots[5:-5, left], EXCLUDED_RGB).sum() > 1000 and not colour(dots[:, right], EXCLUDED_RGB).any()
    # The heatmap: the excluded half is the bare thumbnail (it was coloured without the region), the other coloured.
    base = np.asarray(overlay_images(job.slide, None)[1]).astype(int)
    assert (heat[:, left] == base[:, left]).all() and (np.asarray(plain_heat).astype(int)[:, left] != base[:, left]).any()
    assert (heat[:, right] != base[:, right]).any()
    # Without regions every detection counts: nothing grey.
    assert not colour(np.asarray(plain_dots), EXCLUDED_RGB).any()
