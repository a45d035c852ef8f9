"""Small requests cannot ask for unbounded work (issue 14, item 10): job parameters in sane ranges
and a bounded tile grid, declared image sizes checked before decoding, annotation imports capped."""

import time

import pytest
from rest_framework.test import APIClient

from cases.models import Slide
from tests.annotations import project_with_field, session_of
from tests.claimed_images import png_claiming, tiff_claiming
from tests.conftest import stored_files
from tests.viewer import SlideFactory, client_for
from workers.services import JobError, check_parameters

pytestmark = pytest.mark.django_db


def api_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize("params", [
    {"working_mpp": 1e-6}, {"working_mpp": 1000}, {"tile_px": 1_000_000}, {"tile_px": 32}, {"batch_size": 100_000},
    {"overlap_px": 0}, {"dedupe_radius_um": 1e9}, {"mpp": 1e-9}, {"tile_px": 256.5}, {"tile_px": True},
    {"tile_px": "nan"}, {"working_mpp": "inf"}, {"tile_px": 10 ** 400},
])
def test_parameters_out_of_range_are_refused(params):
    with pytest.raises(JobError) as exc:
        check_parameters(params)
    assert next(iter(params)) in str(exc.value)


def test_sane_parameters_pass():
    assert check_parameters({"tile_px": 256, "overlap_px": 32, "batch_size": 4, "working_mpp": 0.25}) == \
        {"tile_px": 256, "overlap_px": 32, "batch_size": 4, "working_mpp": 0.25}


def test_a_job_cutting_a_slide_into_too_many_tiles_is_refused_before_it_is_queued(personas, settings):
    settings.PDL1_JOB_MAX_TILES = 10_000
    slide = SlideFactory(case=personas["case"], width=100_000, height=80_000, mpp_x=0.25, mpp_y=0.25)
    client = api_for(personas["pathologist"])
    r = client.post("/api/jobs/", {"slide": slide.pk, "detector": "classic",
                                   "parameters": {"working_mpp": 0.1, "tile_px": 64, "overlap_px": 1}},
                    format="json")
    assert r.status_code == 400 and "tiles" in r.json()["detail"]
    r = client.post("/api/jobs/", {"slide": slide.pk, "detector": "classic", "parameters": {"working_mpp": 1e-6}},
                    format="json")
    assert r.status_code == 400 and "working_mpp" in r.json()["detail"]
    from analysis.models import AnalysisJob

    assert not AnalysisJob.objects.exists()


@pytest.mark.parametrize("make,name,side", [
    (tiff_claiming, "claims-16384.tif", 16_384),  # 229 KB claiming 16384² took 20 s and 2.8 GB
    (png_claiming, "claims-12000.png", 12_000),  # left 800 MB resident
])
def test_a_small_file_claiming_a_huge_image_is_refused_before_decoding(personas, media_root, tmp_path, make, name,
                                                                       side):
    path = make(tmp_path / name, side, side)
    started = time.perf_counter()
    with open(path, "rb") as fh:
        r = api_for(personas["pathologist"]).post("/api/slides/", {"files": fh}, format="multipart")
    assert r.status_code == 400 and "pixels" in r.json()["detail"], r.content[:300]
    assert time.perf_counter() - started < 5  # nothing was decoded
    assert not Slide.objects.exists() and stored_files(media_root) == []


def test_the_decode_cap_is_a_setting(personas, media_root, settings):
    from tests.conftest import shared_slide

    settings.PDL1_SLIDE_MAX_DECODE_PIXELS = 100  # small.svs is 16 x 16 = 256 pixels, one level
    with open(shared_slide("small.svs"), "rb") as fh:
        r = api_for(personas["pathologist"]).post("/api/slides/", {"files": fh}, format="multipart")
    assert r.status_code == 400 and "256" in r.json()["detail"]
    settings.PDL1_SLIDE_MAX_DECODE_PIXELS, settings.PDL1_SLIDE_MAX_PIXELS = 10_000, 100
    with open(shared_slide("small.svs"), "rb") as fh:
        r = api_for(personas["pathologist"]).post("/api/slides/", {"files": fh}, format="multipart")
    assert r.status_code == 400 and "limit of 100 pixels" in r.json()["detail"]


def test_annotation_imports_have_their_own_size_cap(personas, settings, tmp_path):
    settings.PDL1_ANNOTATION_IMPORT_MAX_BYTES = 2000
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    client = client_for(personas["annotator"])
    url = f"/api/annotation/sessions/{session.pk}/import/"
    big = tmp_path / "points.csv"
    big.write_text("x,y,label\n" + "1000,1000,positive\n" * 500)  # ~10 KB, far below the slide cap
    with open(big, "rb") as fh:
        r = client.post(url, {"version": 0, "fmt": "csv", "file": fh})
    assert r.status_code == 413 and "2000" in r.json()["detail"]
    r = client.post(url, {"version": 0, "fmt": "csv", "content": big.read_text()}, content_type="application/json")
    assert r.status_code == 413
    small = "x,y,label\n1000,1000,positive\n"
    r = client.post(url, {"version": 0, "fmt": "csv", "content": small}, content_type="application/json")
    assert r.status_code == 200, r.content
    session.refresh_from_db()
    assert session.points == [[1000.0, 1000.0, "positive"]]



@pytest.mark.parametrize("extra,name", [({"size_px": 10 ** 6}, "size_px"), ({"seed": -1}, "seed"),
                                        ({"seed": 10 ** 30}, "seed"), ({"mpp": 1e-9}, "mpp"), ({"mpp": 1e9}, "mpp")])
def test_field_sampling_parameters_are_bounded(personas, extra, name):
    project, field = project_with_field(personas)
    r = client_for(personas["pathologist"]).post("/api/annotation/fields/", {
        "project": project.pk, "slide": str(field.slide.pseudo_id), "sample": 2, **extra},
        content_type="application/json")
    assert r.status_code == 400 and name in r.json(), r.content


@pytest.mark.parametrize("kwargs", [{"size_px": 16, "mpp": 0.001}, {"size_px": 10 ** 6}, {"seed": -1}, {"n": 0}])
def test_field_sampling_service_refuses_out_of_range_requests_before_reading_the_slide(personas, kwargs):
    from annotations import services

    project, field = project_with_field(personas)
    with pytest.raises(services.AnnotationError):
        services.do_sample_fields(project, field.slide, **{"n": 2, **kwargs})
