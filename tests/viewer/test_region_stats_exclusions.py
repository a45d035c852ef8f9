"""A tumour area's own counts, TPS and area leave out the active exclusions inside it, as the slide's score
does (viewer.regions.region_stats): a necrosis hole's cells are not the tumour area's."""

import numpy as np
import pytest
from django.conf import settings

from analysis.detection_store import write_store
from tests.viewer import DoneJobFactory, SlideFactory, client_for

pytestmark = pytest.mark.django_db
TUMOUR = [[0, 0], [900, 0], [900, 900], [0, 900]]
HOLE = [[400, 400], [700, 400], [700, 700], [400, 700]]


def holed_job(case):
    """2 positive + 2 negative outside the hole, 8 positive inside it; 0.5 µm/px."""
    slide = SlideFactory(case=case, width=1000, height=1000)
    xy = np.array([[100, 100], [110, 100], [120, 120], [130, 120]] + [[500 + i, 500] for i in range(8)], np.float32)
    labels = np.array([1, 1, 2, 2] + [1] * 8, np.int8)
    relative = f"jobs/holed-{slide.pk}/detections.store"
    write_store(settings.MEDIA_ROOT / relative, xy, labels, np.ones(len(xy), np.float32), width=1000, height=1000,
                mpp=0.5)
    return DoneJobFactory(slide=slide, result_file=relative, summary={"counts": {"positive": 10, "negative": 2}})


def post(client, job, **data):
    return client.post(f"/api/viewer/jobs/{job.pk}/regions/", data, content_type="application/json")


def test_a_tumour_area_counts_and_measures_without_its_exclusions(personas, media_root):
    client = client_for(personas["pathologist"])
    job = holed_job(personas["case"])
    assert post(client, job, base_version=0, kind="tumour", vertices=TUMOUR).status_code == 201
    hole = post(client, job, base_version=1, kind="necrosis", vertices=HOLE)
    assert hole.status_code == 201
    body = client.get(f"/api/viewer/jobs/{job.pk}/regions/").json()
    items = {i["kind"]: i for i in body["items"]}
    assert body["scores"]["counts"] == {"positive": 2, "negative": 2, "other": 0} and body["scores"]["tps"] == 50.0
    tumour = items["tumour"]
    assert tumour["counts"] == {"positive": 2, "negative": 2} and tumour["tps"] == 50.0  # not 10+/2-, 83.33 %
    # (900² - 300²) px at 0.25 µm² each; the outline's own area stays stated beside it
    assert tumour["area_mm2"] == pytest.approx((900 ** 2 - 300 ** 2) * 0.25 / 1e6)
    assert tumour["outline_area_mm2"] == pytest.approx(900 ** 2 * 0.25 / 1e6)
    # the exclusion states what it takes out
    assert items["necrosis"]["counts"] == {"positive": 8, "negative": 0}
    assert items["necrosis"]["area_mm2"] == items["necrosis"]["outline_area_mm2"] == pytest.approx(0.0225)

    # deleting the hole gives the tumour area its cells back
    deleted = client.delete(f"/api/viewer/jobs/{job.pk}/regions/{hole.json()['item']['id']}/?base_version=2")
    assert deleted.status_code == 200, deleted.content
    (tumour,) = client.get(f"/api/viewer/jobs/{job.pk}/regions/").json()["items"]
    assert tumour["counts"] == {"positive": 10, "negative": 2} and tumour["area_mm2"] == pytest.approx(0.2025)


def test_a_tumour_area_saved_after_the_exclusion_is_stated_without_it(personas, media_root):
    """The item a POST answers (region_items of one row) reads the slide's other active exclusions too."""
    client = client_for(personas["pathologist"])
    job = holed_job(personas["case"])
    assert post(client, job, base_version=0, kind="necrosis", vertices=HOLE).status_code == 201
    item = post(client, job, base_version=1, kind="tumour", vertices=TUMOUR).json()["item"]
    assert item["counts"] == {"positive": 2, "negative": 2} and item["tps"] == 50.0
