"""A field's slide is stained for its project's marker: a Ki-67 slide's points in a PD-L1 project trained as
PD-L1 (db:PD-L1, the export). Refused when the field is made (drawn, sampled, API, pages), the pages offer only
matching slides, and a field made before the check is left out of training, and said so."""

import uuid

import pytest

from analysis import datasets
from annotations import dataset, services
from annotations.choices import SessionStatus
from annotations.models import AnnotationSession, Field
from cases.models import Slide
from tests.annotations import client_for, session_of
from tests.workers.conftest import synthetic_slide, synthetic_slide_file  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db


def twin_slide(slide, marker) -> Slide:
    """Another slide row of the same file and case, stained for `marker` (the pixels do not matter here)."""
    twin = Slide.objects.get(pk=slide.pk)
    twin.pk, twin.pseudo_id, twin.marker = None, uuid.uuid4(), marker
    twin.save()
    return twin


def pdl1_project(personas):
    return services.do_create_project(personas["pathologist"], "pdl1", "lung_squamous", "PD-L1", [],
                                      [personas["annotator"]])


def test_a_field_on_a_slide_of_another_marker_is_refused(personas, synthetic_slide):  # noqa: F811
    project = pdl1_project(personas)
    ki67 = twin_slide(synthetic_slide, "Ki67")
    with pytest.raises(services.AnnotationError, match="stained for Ki67, project 'pdl1' annotates PD-L1"):
        services.do_create_field(project, ki67, 100, 100, 64, 64)
    with pytest.raises(services.AnnotationError, match="stained for Ki67"):
        services.do_sample_fields(project, ki67, 1, size_px=128)
    r = client_for(personas["pathologist"]).post("/api/annotation/fields/", {
        "project": project.pk, "slide": str(ki67.pseudo_id), "x": 100, "y": 100, "width": 64, "height": 64},
        content_type="application/json")
    assert r.status_code == 400 and "stained for Ki67" in r.json()["problems"][0]
    assert not Field.objects.exists() and not AnnotationSession.objects.exists()
    services.do_create_field(project, synthetic_slide, 100, 100, 64, 64)  # its own marker's slide: fine


def test_the_pages_offer_only_slides_of_the_projects_marker(personas, synthetic_slide):  # noqa: F811
    project = pdl1_project(personas)
    ki67 = twin_slide(synthetic_slide, "Ki67")
    client = client_for(personas["pathologist"])
    page = client.get(f"/annotate/projects/{project.pk}/").content.decode()
    assert str(synthetic_slide.pseudo_id) in page and str(ki67.pseudo_id) not in page
    r = client.post(f"/annotate/projects/{project.pk}/fields/draw/", {
        "slide": str(ki67.pseudo_id), "x": 100, "y": 100, "width": 64, "height": 64}, follow=True)
    assert "Field not created" in r.content.decode() and not Field.objects.exists()
    r = client.get(f"/annotate/projects/{project.pk}/fields/draw/?slide={ki67.pseudo_id}", follow=True)
    assert "Choose a slide to draw on" in r.content.decode()


def test_sessions_on_a_slide_of_another_marker_are_left_out_of_training_and_named(personas, synthetic_slide,  # noqa: F811
                                                                                  tmp_path, caplog):
    project = pdl1_project(personas)
    good = services.do_create_field(project, synthetic_slide, 100, 100, 64, 64)
    ki67 = twin_slide(synthetic_slide, "Ki67")
    # a field made before the check (the service refuses it now): created as the old code did
    bad = Field.objects.create(project=project, slide=ki67, x=300, y=300, width=64, height=64)
    bad_session = AnnotationSession.objects.create(field=bad, annotator=personas["annotator"])
    for field, point in ((good, [110, 110, "positive"]), (bad, [310, 310, "positive"])):
        s = session_of(field, personas["annotator"])
        services.do_save_points(s, personas["annotator"], 0, [point])
        services.do_submit(s, personas["annotator"])
        services.do_accept(s, personas["pathologist"])
    manifest = dataset.do_export_dataset(dataset.accepted_sessions(project), tmp_path / "ds", mpp=0.5)
    assert [e["region"] for e in manifest["fields"]] == [[100, 100, 64, 64]]
    assert manifest["left_out"] == [{"session": bad_session.pk, "field": bad.pk, "slide": str(ki67.pseudo_id),
                                     "reason": "the slide is stained for Ki67, project 'pdl1' annotates PD-L1"}]
    (sample,) = datasets.load_source("db:PD-L1", 0.5)
    assert sample.meta["region"] == [100, 100, 64, 64]
    assert f"session {bad_session.pk} (field {bad.pk}): the slide is stained for Ki67" in caplog.text
    # nothing of the right marker left: refused, saying why
    AnnotationSession.objects.filter(field=good).update(status=SessionStatus.SUBMITTED)
    with pytest.raises(services.AnnotationError, match=r"no sessions to export \(1 left out"):
        dataset.do_export_dataset(dataset.accepted_sessions(project), tmp_path / "ds2", mpp=0.5)
