"""Fields sampled from tissue and the training-dataset export read back by analysis.datasets."""

import json

import numpy as np
import pytest

from analysis import datasets
from annotations import dataset, services
from annotations.choices import FieldSource
from tests.annotations import client_for, session_of
from tests.workers.conftest import synthetic_slide, synthetic_slide_file  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db


def make_project(personas):
    return services.do_create_project(personas["pathologist"], "export", "lung_squamous", "PD-L1", ["immune"],
                                      [personas["annotator"]])


def test_sample_fields_on_tissue_without_overlap(personas, synthetic_slide):  # noqa: F811
    project = make_project(personas)
    fields = services.do_sample_fields(project, synthetic_slide, 3, size_px=128, mpp=1.0, seed=1)
    assert len(fields) == 3
    for f in fields:
        assert f.width == f.height == 256  # 128 px at 1 µm/px on a 0.5 µm/px slide
        assert f.source == FieldSource.SAMPLED and f.tissue_fraction >= 0.5
        assert 0 <= f.x <= synthetic_slide.width - 256 and 0 <= f.y <= synthetic_slide.height - 256
        assert f.sessions.filter(annotator=personas["annotator"]).exists()
    boxes = [(f.x, f.y) for f in fields]
    for i, (x1, y1) in enumerate(boxes):
        for x2, y2 in boxes[i + 1:]:
            assert abs(x1 - x2) >= 256 or abs(y1 - y2) >= 256
    with pytest.raises(services.AnnotationError, match="does not fit"):
        services.do_sample_fields(project, synthetic_slide, 1, size_px=4000)
    with pytest.raises(services.AnnotationError, match="only .* fit"):
        services.do_sample_fields(project, synthetic_slide, 500, size_px=256)
    assert project.fields.count() == 3


def test_sample_fields_over_the_api(personas, synthetic_slide):  # noqa: F811
    project = make_project(personas)
    r = client_for(personas["pathologist"]).post(
        "/api/annotation/fields/", {"project": project.pk, "slide": str(synthetic_slide.pseudo_id), "sample": 2,
                                    "size_px": 256}, content_type="application/json")
    assert r.status_code == 201, r.content
    assert len(r.json()) == 2 and r.json()[0]["source"] == "sampled"
    r = client_for(personas["annotator"]).post(
        "/api/annotation/fields/", {"project": project.pk, "slide": str(synthetic_slide.pseudo_id), "sample": 2},
        content_type="application/json")
    assert r.status_code == 400 and project.fields.count() == 2


def test_split_by_slide_is_deterministic_and_covers_every_split():
    keys = [f"slide-{i}" for i in range(20)]
    a, b = dataset.split_by_slide(keys, seed=3), dataset.split_by_slide(list(reversed(keys)), seed=3)
    assert a == b and sorted(set(a.values())) == ["test", "train", "val"]
    assert list(a.values()).count("test") == 4 and list(a.values()).count("val") == 3  # each slide by its own hash
    assert set(dataset.split_by_slide(["one"]).values()) == {"train"}


def test_point_conversion_to_the_crop():
    rows = dataset.field_to_image_points([[100, 200, "positive"], [101, 200, "immune"], [355, 455, "negative"]],
                                         100, 200, 0.5, 128, 128)
    assert rows == [(-0.25, -0.25, "positive"), (127.25, 127.25, "negative")]


def accepted_session(personas, project, slide, region, points):
    field = services.do_create_field(project, slide, *region)
    session = session_of(field, personas["annotator"])
    services.do_save_points(session, personas["annotator"], 0, points)
    services.do_submit(session, personas["annotator"])
    services.do_accept(session, personas["pathologist"])
    return session


def test_export_is_read_by_analysis_datasets(personas, synthetic_slide, tmp_path):  # noqa: F811
    project = make_project(personas)
    s1 = accepted_session(personas, project, synthetic_slide, (100, 200, 256, 256),
                          [[110, 210, "positive"], [300, 400, "negative"], [200, 300, "immune"], [355, 455, "negative"]])
    s2 = accepted_session(personas, project, synthetic_slide, (600, 600, 200, 100), [[700, 650, "positive"]])
    out = tmp_path / "export"
    manifest = dataset.do_export_dataset(dataset.accepted_sessions(project), out, mpp=1.0, name="lung batch")
    assert manifest["format"] == "pdl1-point-dataset" and len(manifest["fields"]) == 2
    entry = next(e for e in manifest["fields"] if e["session"] == s1.pk)
    assert entry["slide"] == str(synthetic_slide.pseudo_id) and entry["region"] == [100, 200, 256, 256]
    assert entry["annotator"] == "annotator" and entry["counts"] == {"positive": 1, "negative": 2, "immune": 1}
    assert entry["split"] == "train"  # one slide: train
    assert json.loads((out / "manifest.json").read_text())["fields"][0]["mpp"] == 1.0

    samples = {s.meta.get("id", s.name): s for s in datasets.folder_samples(out)}
    sample = samples[entry["id"]]
    assert sample.rgb.shape == (128, 128, 3) and sample.mpp == 1.0 and not sample.synthetic
    np.testing.assert_allclose(sample.xy, [[4.75, 4.75], [99.75, 99.75], [127.25, 127.25]])
    assert sample.labels.tolist() == [datasets.POSITIVE, datasets.NEGATIVE, datasets.NEGATIVE]
    assert samples[f"field-{s2.field_id}-session-{s2.pk}"].rgb.shape == (50, 100, 3)
    # the crop shows the slide: same pixels as reading level 0 and shrinking
    assert sample.rgb.std() > 5
    # the loader used by train_detector accepts it too, resampled to its working mpp
    loaded = datasets.load_source(f"folder:{out}", mpp=0.5)
    assert {s.rgb.shape for s in loaded} == {(256, 256, 3), (100, 200, 3)}


def test_export_refuses_unaccepted_sessions_and_existing_folders(personas, synthetic_slide, tmp_path):  # noqa: F811
    project = make_project(personas)
    field = services.do_create_field(project, synthetic_slide, 0, 0, 64, 64)
    with pytest.raises(services.AnnotationError, match="only accepted sessions are exported"):
        dataset.do_export_dataset(field.sessions.all(), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(services.AnnotationError, match="no sessions"):
        dataset.do_export_dataset(dataset.accepted_sessions(project), tmp_path / "x")
    accepted_session(personas, project, synthetic_slide, (100, 100, 64, 64), [[110, 110, "positive"]])
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "manifest.json").write_text("{}")
    with pytest.raises(services.AnnotationError, match="already holds a dataset"):
        dataset.do_export_dataset(dataset.accepted_sessions(project), tmp_path / "y")


def test_export_over_the_api(personas, synthetic_slide, settings):  # noqa: F811
    project = make_project(personas)
    accepted_session(personas, project, synthetic_slide, (100, 100, 64, 64), [[110, 110, "positive"]])
    r = client_for(personas["annotator"]).post(f"/api/annotation/projects/{project.pk}/export-dataset/")
    assert r.status_code == 403
    r = client_for(personas["pathologist"]).post(f"/api/annotation/projects/{project.pk}/export-dataset/",
                                                 {"mpp": 0.5}, content_type="application/json")
    assert r.status_code == 201, r.content
    body = r.json()
    # the folder's name under MEDIA_ROOT/datasets/, never a server path
    assert set(body) == {"dataset", "fields"} and "/" not in body["dataset"] and str(settings.MEDIA_ROOT) not in r.content.decode()
    assert len(datasets.folder_samples(dataset.dataset_folder(body["dataset"]))) == 1


def test_an_exported_point_stays_on_its_nucleus_in_both_axes(personas, synthetic_slide, tmp_path):  # noqa: F811
    """A narrow, tall field: the rounded output width made the x scale differ from the y scale, and the y
    coordinate was scaled with x's (6 µm off, a nucleus away, at the far end of the field)."""
    project = make_project(personas)
    accepted_session(personas, project, synthetic_slide, (100, 200, 101, 1200), [[150, 1390, "positive"]])
    dataset.do_export_dataset(dataset.accepted_sessions(project), tmp_path / "e", mpp=1.0)
    (sample,) = datasets.folder_samples(tmp_path / "e")
    height, width = sample.rgb.shape[:2]
    assert (width, height) == (50, 600)  # 101 x 1200 level-0 px at 0.5 -> 1.0 µm/px, 50.5 rounded
    x, y = sample.xy[0]
    assert y == pytest.approx((1390 - 200 + 0.5) * 600 / 1200 - 0.5, abs=0.01)  # 594.75, not 588.86
    assert x == pytest.approx((150 - 100 + 0.5) * 50 / 101 - 0.5, abs=0.01)


def test_db_samples_match_the_folder_export(personas, synthetic_slide, tmp_path):  # noqa: F811
    project = make_project(personas)
    accepted_session(personas, project, synthetic_slide, (100, 200, 256, 256), [[110, 210, "positive"]])
    (sample,) = dataset.db_samples("PD-L1")
    assert sample.source == "db:PD-L1" and sample.mpp == 0.5 and sample.rgb.shape == (256, 256, 3)
    np.testing.assert_allclose(sample.xy, [[10, 10]])
    dataset.do_export_dataset(dataset.accepted_sessions(project), tmp_path / "e", mpp=0.5)
    (folder,) = datasets.folder_samples(tmp_path / "e")
    np.testing.assert_array_equal(folder.rgb, sample.rgb)


def test_export_command(personas, synthetic_slide, tmp_path):  # noqa: F811
    from io import StringIO

    from django.core.management import CommandError, call_command

    project = make_project(personas)
    with pytest.raises(CommandError, match="no sessions"):
        call_command("export_annotations", str(tmp_path / "a"), "--project", str(project.pk))
    with pytest.raises(CommandError, match="no annotation project"):
        call_command("export_annotations", str(tmp_path / "a"), "--project", "999")
    accepted_session(personas, project, synthetic_slide, (100, 100, 64, 64), [[110, 110, "positive"]])
    out = StringIO()
    # --project or --marker is required (test_export_one_marker)
    call_command("export_annotations", str(tmp_path / "a"), "--project", str(project.pk), "--mpp", "0.5", stdout=out)
    assert "1 PD-L1 field(s) written" in out.getvalue() and f"folder:{tmp_path / 'a'}" in out.getvalue()
    assert len(datasets.folder_samples(tmp_path / "a")) == 1


def test_consensus_as_geojson(personas):
    from cases.choices import Role
    from tests.annotations import project_with_field
    from tests.factories import make_user

    # two annotators: one annotator's set is no consensus (test_consensus_rules)
    second = make_user(Role.ANNOTATOR, [personas["case"].department], username="annot2")
    _, field = project_with_field(personas, annotators=[personas["annotator"], second])
    for user in (personas["annotator"], second):
        session = session_of(field, user)
        services.do_save_points(session, user, 0, [[1100, 1100, "positive"]])
        services.do_submit(session, user)
    r = client_for(personas["pathologist"]).get(f"/api/annotation/fields/{field.pk}/consensus/?fmt=geojson")
    assert r.json()["features"][0]["geometry"]["coordinates"] == [[1100.0, 1100.0]]


def test_annotator_loses_sessions_when_slide_access_is_withdrawn(personas):
    from tests.annotations import project_with_field

    _, field = project_with_field(personas)
    client = client_for(personas["annotator"])
    assert len(client.get("/api/annotation/sessions/").json()["results"]) == 1
    personas["annotator"].profile.departments.clear()
    assert client.get("/api/annotation/sessions/").json()["results"] == []
    assert client.get("/api/annotation/fields/").json()["results"] == []


@pytest.mark.django_db(transaction=True)
def test_train_a_new_model_from_accepted_annotations(personas, synthetic_slide, settings):  # noqa: F811
    """The API action exports the accepted fields and queues training (run inline in tests); the
    trained model is registered as a ModelVersion."""
    from analysis.models import ModelVersion

    project = make_project(personas)
    accepted_session(personas, project, synthetic_slide, (100, 200, 256, 256),
                     [[150, 250, "positive"], [300, 400, "negative"]])
    api = client_for(personas["pathologist"])
    bad = api.post(f"/api/annotation/projects/{project.pk}/train-model/", {"name": "Bad Name", "steps": 0},
                   format="json")
    assert bad.status_code == 400 and "slug" in bad.json()["detail"] and "steps" in bad.json()["detail"]
    assert client_for(personas["annotator"]).post(f"/api/annotation/projects/{project.pk}/train-model/",
                                                  {"name": "x"}, format="json").status_code == 403
    response = api.post(f"/api/annotation/projects/{project.pk}/train-model/",
                        {"name": "lung-from-annotations", "steps": 2}, format="json")
    assert response.status_code == 202, response.json()
    assert "/" not in response.json()["dataset"] and dataset.dataset_folder(response.json()["dataset"]).is_dir()
    version = ModelVersion.objects.get(name="lung-from-annotations")
    assert version.arch == "fcn" and version.backbone == "resnet18"
    assert version.training_data["sources"] and not version.synthetic


@pytest.mark.django_db(transaction=True)
def test_train_button_on_the_project_page(personas, synthetic_slide):  # noqa: F811
    """The page's form queues the same training (inline in tests); bad input is explained and
    starts nothing; the finished run and its registered model are listed on the project page."""
    from analysis.models import ModelVersion

    project = make_project(personas)
    client = client_for(personas["pathologist"])
    page = client.get(f"/annotate/projects/{project.pk}/").content.decode()
    assert 'title="No accepted fields yet"' in page
    accepted_session(personas, project, synthetic_slide, (100, 200, 256, 256),
                     [[150, 250, "positive"], [300, 400, "negative"]])
    url = f"/annotate/projects/{project.pk}/train/"
    page = client.post(url, {"name": "Not A Slug", "steps": "0", "backbone": "resnet18"}, follow=True).content.decode()
    assert "Training not started" in page and "give a slug" in page and "steps" in page
    assert not ModelVersion.objects.exclude(origin="shipped").exists()  # the starter is registered at migrate
    assert client_for(personas["annotator"]).post(url, {"name": "x"}).status_code == 403
    assert client_for(personas["outsider"]).post(url, {"name": "x"}).status_code == 404
    page = client.post(url, {"name": "lung-from-page", "steps": "2", "backbone": "resnet18"},
                       follow=True).content.decode()
    assert "Training of model &#x27;lung-from-page&#x27; queued" in page
    trained = ModelVersion.objects.get(name="lung-from-page")
    assert trained.backbone == "resnet18" and trained.status == "research"  # not for clinical jobs until released
    assert "registered model version <b>lung-from-page</b>" in page


def test_the_db_source_reads_one_markers_projects_only(personas, synthetic_slide):  # noqa: F811
    """A Ki-67 project's "positive" (a stained nucleus) is not a PD-L1 positive (a stained membrane): training
    reads db:MARKER, one marker's projects, and a bare "db" is refused."""
    pdl1 = make_project(personas)
    ki67 = services.do_create_project(personas["pathologist"], "ki67", "lung_squamous", "Ki67", [],
                                      [personas["annotator"]])
    from tests.annotations.test_marker_match import twin_slide

    accepted_session(personas, pdl1, synthetic_slide, (100, 200, 64, 64), [[110, 210, "positive"]])
    # a Ki-67 project annotates Ki-67 slides only (test_marker_match)
    accepted_session(personas, ki67, twin_slide(synthetic_slide, "Ki67"), (400, 400, 64, 64), [[410, 410, "positive"]])
    (pd,) = datasets.load_source("db:PD-L1", 0.5)
    (ki,) = datasets.load_source("db:Ki67", 0.5)
    assert (pd.meta["marker"], ki.meta["marker"]) == ("PD-L1", "Ki67")
    assert datasets.is_nuclear_marker_source("db:Ki67") and not datasets.is_nuclear_marker_source("db:PD-L1")
    for spec in ("db", "db:CD8"):
        with pytest.raises(datasets.DatasetError, match="db:MARKER"):
            datasets.load_source(spec, 0.5)
    with pytest.raises(datasets.DatasetError, match="no accepted annotation sessions of H&E projects"):
        datasets.load_source("db:H&E", 0.5)
