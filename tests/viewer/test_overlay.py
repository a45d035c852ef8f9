"""Overlay API: viewport points (vs brute force), point info, density, job state, validation, access."""

import datetime

import numpy as np
import pytest
from django.utils import timezone

from analysis.choices import JobStatus
from analysis.detection_store import open_store
from tests.viewer import DoneJobFactory, client_for, job_with_result
from viewer import eta, human_layer, overlay, stores

pytestmark = pytest.mark.django_db


def url(job, action):
    return f"/api/viewer/jobs/{job.pk}/{action}/"


@pytest.fixture
def job(personas, media_root):
    return job_with_result(personas["case"], n=20000, seed=3)


def brute_force(job, media_root, x0, y0, x1, y1):
    store = open_store(media_root / job.result_file)
    everything = store.all()
    inside = ((everything.xy[:, 0] >= x0) & (everything.xy[:, 0] < x1)
              & (everything.xy[:, 1] >= y0) & (everything.xy[:, 1] < y1))
    return np.flatnonzero(inside), everything


def test_viewport_matches_brute_force_with_stable_ids(personas, job, media_root):
    client = client_for(personas["pathologist"])
    box = dict(x0=1234.5, y0=700, x1=5100, y1=3333.3)
    body = client.get(url(job, "points"), {**box, "max": 100000}).json()
    expected, everything = brute_force(job, media_root, *box.values())
    assert body["total"] == body["returned"] == len(expected) > 1000
    assert sorted(body["ids"]) == expected.tolist()
    order = np.asarray(body["ids"])
    np.testing.assert_allclose(np.asarray(body["xy"]), everything.xy[order], atol=0.051)
    assert body["labels"] == everything.labels[order].tolist()
    np.testing.assert_allclose(body["scores"], everything.scores[order], atol=0.001)
    assert body["corrected"] == [False] * len(order)
    # a click names a detection by its id
    point = client.get(url(job, f"points/{order[7]}")).json()
    assert point["id"] == order[7] and point["label"] == everything.labels[order[7]] and not point["corrected"]
    assert point["x"] == pytest.approx(everything.xy[order[7], 0], abs=0.051)


def test_viewport_thins_to_max_and_filters_layers(personas, job, media_root):
    client = client_for(personas["pathologist"])
    box = dict(x0=0, y0=0, x1=8000, y1=6000)
    body = client.get(url(job, "points"), {**box, "max": 500}).json()
    assert body["total"] == 20000 and body["returned"] == len(body["xy"]) == len(body["ids"]) == 500
    assert len(set(body["ids"])) == 500
    positive = client.get(url(job, "points"), {**box, "max": 100000, "layers": "positive"}).json()
    truth_positive = int((job.truth[1] == 1).sum())
    assert positive["total"] == truth_positive and set(positive["labels"]) == {1}
    both = client.get(url(job, "points"), {**box, "max": 10, "layers": "positive,negative"}).json()
    assert both["total"] == 20000


def test_density_sums_to_the_counts(personas, job):
    body = client_for(personas["pathologist"]).get(url(job, "density"), {"grid_px": 512}).json()
    assert body["grid_px"] == 512 and body["shape"] == [12, 16]
    positive, negative = np.asarray(body["positive"]), np.asarray(body["negative"])
    assert positive.shape == negative.shape == (12, 16)
    assert positive.sum() == (job.truth[1] == 1).sum() and negative.sum() == (job.truth[1] == 2).sum()
    assert body["max"] == max(positive.max(), negative.max())
    # cell (row 2, col 3) holds the points of x in [1536, 2048), y in [1024, 1536)
    xy, labels = job.truth[0], job.truth[1]
    cell = (xy[:, 0] >= 1536) & (xy[:, 0] < 2048) & (xy[:, 1] >= 1024) & (xy[:, 1] < 1536)
    assert positive[2, 3] == (cell & (labels == 1)).sum()


@pytest.mark.parametrize("params, message", [
    ({"x0": "a", "y0": 0, "x1": 10, "y1": 10}, "x0 must be a number"),
    ({"y0": 0, "x1": 10, "y1": 10}, "x0 is required"),
    ({"x0": 10, "y0": 0, "x1": 10, "y1": 10}, "x1 > x0"),
    ({"x0": 0, "y0": 5, "x1": 10, "y1": 1}, "y1 > y0"),
    ({"x0": 0, "y0": 0, "x1": 10, "y1": 10, "max": 100001}, "max must be between"),
    ({"x0": 0, "y0": 0, "x1": 10, "y1": 10, "max": "1.5"}, "max must be an integer"),
    ({"x0": 0, "y0": 0, "x1": 10, "y1": 10, "layers": "tumour"}, "layers must be"),
    ({"x0": "nan", "y0": 0, "x1": 10, "y1": 10}, "finite"),
])
def test_bad_viewport_parameters_answer_400(personas, job, params, message):
    response = client_for(personas["pathologist"]).get(url(job, "points"), params)
    assert response.status_code == 400 and message in response.json()["detail"]


def test_bad_grid_and_unknown_point(personas, job):
    client = client_for(personas["pathologist"])
    assert client.get(url(job, "density"), {"grid_px": "x"}).status_code == 400
    assert "grid_px must be between" in client.get(url(job, "density"), {"grid_px": 2}).json()["detail"]
    assert client.get(url(job, "points/20000")).status_code == 404
    assert client.get(url(job, "points/c999")).status_code == 404


def test_a_job_without_result_answers_409(personas, job):
    running = DoneJobFactory(slide=job.slide, status=JobStatus.RUNNING)
    response = client_for(personas["pathologist"]).get(url(running, "points"), {"x0": 0, "y0": 0, "x1": 9, "y1": 9})
    assert response.status_code == 409 and "no detections" in response.json()["detail"]


def test_permissions_matrix_for_overlay(personas, job):
    box = {"x0": 0, "y0": 0, "x1": 100, "y1": 100}
    expected = {"pathologist": 200, "admin": 200, "outsider": 404, "annotator": 403, "clinician": 403,
                "norole": 403}
    for persona, code in expected.items():
        client = client_for(personas[persona])
        codes = {client.get(url(job, a), box).status_code for a in ("points", "density", "state", "corrections")}
        assert codes == {code}, persona
    assert client_for(None).get(url(job, "points"), box).status_code == 401


def test_job_state_has_the_progress_dict_and_an_eta(personas, job):
    from workers.progress import job_state

    running = DoneJobFactory(slide=job.slide, status=JobStatus.RUNNING, tiles_total=100, tiles_done=25,
                             started_at=timezone.now() - datetime.timedelta(seconds=30))
    body = client_for(personas["pathologist"]).get(url(running, "state")).json()
    assert {k: v for k, v in body.items() if k != "eta_s"} == job_state(running)
    assert body["eta_s"] == pytest.approx(90, abs=2)
    done = client_for(personas["pathologist"]).get(url(job, "state")).json()
    assert done["status"] == "done" and done["eta_s"] == 0


def test_estimate_eta():
    assert eta.estimate_eta("running", 10, 40, 20.0) == 60.0
    assert eta.estimate_eta("running", 0, 40, 20.0) is None
    assert eta.estimate_eta("queued", 0, 0, None) is None
    assert eta.estimate_eta("merging", 40, 40, 50.0) is None
    assert eta.estimate_eta("failed", 3, 40, 5.0) == 0.0


def test_the_fast_json_of_the_api_equals_the_plain_service_result(personas, job, media_root):
    """The API encodes numpy arrays directly (orjson); the JSON holds exactly the service's values,
    for an ordinary box, an empty one, and one with relabelled points."""
    client = client_for(personas["pathologist"])
    store = stores.job_store(job)
    for box in (dict(x0=100, y0=200, x1=3000, y1=2500), dict(x0=0, y0=0, x1=1, y1=1)):
        body = client.get(url(job, "points"), {**box, "max": 100000})
        assert body["Content-Type"] == "application/json"
        plain = overlay.viewport(store, human_layer.correction_state(job), *box.values(), 100000, {1, 2})
        assert body.json() == plain
    relabelled = overlay.CorrectionState(relabelled={0: 2, 1: 1})
    arrays = overlay.viewport(store, relabelled, 0, 0, 100000, 100000, 100000, {1, 2}, as_arrays=True)
    lists = overlay.viewport(store, relabelled, 0, 0, 100000, 100000, 100000, {1, 2})
    assert isinstance(arrays["xy"], np.ndarray) and arrays["xy"].tolist() == lists["xy"]
    assert arrays["corrected"].tolist() == lists["corrected"] and sum(lists["corrected"]) == 2
