"""One nucleus, one point; one region, one field: two points of a set closer than 1.5 µm (one nucleus clicked
twice) are refused, listed, and nothing is saved; a field overlapping another field of the project on the slide
is refused (the same nuclei would be two samples, annotated twice)."""

import pytest

from annotations import services
from annotations.choices import SessionStatus
from annotations.models import AnnotationSession, Field
from tests.annotations import SlideFactory, client_for, project_with_field, session_of

pytestmark = pytest.mark.django_db


def test_two_points_closer_than_one_and_a_half_micrometres_are_refused_and_named(personas):
    _, field = project_with_field(personas, slide=SlideFactory(case=personas["case"], mpp_x=0.25, mpp_y=0.25))
    session = session_of(field, personas["annotator"])
    points = [[1100, 1100, "positive"], [1100, 1100, "positive"], [1200, 1200, "negative"], [1204, 1203, "negative"],
              [1300, 1300, "positive"], [1306, 1300, "negative"]]  # 0, 1.25 and 1.5 µm apart at 0.25 µm/px
    with pytest.raises(services.AnnotationError, match="points rejected, nothing saved") as err:
        services.do_save_points(session, personas["annotator"], 0, points)
    assert err.value.problems == [
        "points 0 (1100, 1100) and 1 (1100, 1100) are 0.00 µm apart, closer than 1.5 µm: one nucleus twice? keep one",
        "points 2 (1200, 1200) and 3 (1204, 1203) are 1.25 µm apart, closer than 1.5 µm: one nucleus twice? keep one",
    ]
    session.refresh_from_db()
    assert session.version == 0 and session.points == []
    services.do_save_points(session, personas["annotator"], 0, [points[0], points[2], points[4], points[5]])


def test_without_a_resolution_the_limit_is_three_slide_pixels_and_says_so(personas):
    _, field = project_with_field(personas, slide=SlideFactory(case=personas["case"], mpp_x=None, mpp_y=None))
    session = session_of(field, personas["annotator"])
    with pytest.raises(services.AnnotationError) as err:
        services.do_save_points(session, personas["annotator"], 0, [[1100, 1100, "positive"], [1102, 1100, "negative"]])
    assert err.value.problems == ["points 0 (1100, 1100) and 1 (1102, 1100) are 2.00 px apart, closer than 3 slide px "
                                  "(the slide has no resolution, so 1.5 µm cannot be measured): one nucleus twice? "
                                  "keep one"]
    services.do_save_points(session, personas["annotator"], 0, [[1100, 1100, "positive"], [1103, 1100, "negative"]])


def test_imports_and_the_api_refuse_them_too_and_accept_checks_again(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    client = client_for(personas["annotator"])
    r = client.put(f"/api/annotation/sessions/{session.pk}/points/", {"version": 0, "points": [
        {"x": 1100, "y": 1100, "label": "positive"}, {"x": 1100.5, "y": 1100, "label": "negative"}]},
        content_type="application/json")
    assert r.status_code == 400 and "points 0 (1100, 1100) and 1 (1100.5, 1100)" in r.json()["problems"][0]
    with pytest.raises(services.AnnotationError, match="csv import rejected"):
        services.do_import_points(session, personas["annotator"], 0, "x,y,label\n1100,1100,positive\n1101,1100,positive\n",
                                  "csv")
    # a set saved before the check: accepting it checks again
    AnnotationSession.objects.filter(pk=session.pk).update(points=[[1100, 1100, "positive"], [1100, 1100, "positive"]],
                                                           status=SessionStatus.SUBMITTED)
    session.refresh_from_db()
    with pytest.raises(services.AnnotationError, match="not accepted"):
        services.do_accept(session, personas["pathologist"])


def test_a_field_overlapping_another_of_the_project_on_the_slide_is_refused(personas):
    project, field = project_with_field(personas)  # (1000, 1000, 512x512)
    for region in ((1000, 1000, 512, 512), (1200, 1300, 64, 64), (900, 900, 101, 101)):
        with pytest.raises(services.AnnotationError, match=f"overlaps field {field.pk} \\(1000, 1000, 512x512\\)"):
            services.do_create_field(project, field.slide, *region)
    assert Field.objects.count() == 1
    # touching is not overlapping; another slide or another project is fine
    services.do_create_field(project, field.slide, 1512, 1000, 64, 64)
    services.do_create_field(project, field.slide, 900, 900, 100, 100)
    services.do_create_field(project, SlideFactory(case=personas["case"]), 1000, 1000, 512, 512)
    other = services.do_create_project(personas["pathologist"], "other", "lung_squamous", "PD-L1", [],
                                       [personas["annotator"]])
    services.do_create_field(other, field.slide, 1000, 1000, 512, 512)
    r = client_for(personas["pathologist"]).post("/api/annotation/fields/", {
        "project": project.pk, "slide": str(field.slide.pseudo_id), "x": 1100, "y": 1100, "width": 8, "height": 8},
        content_type="application/json")
    assert r.status_code == 400 and "overlaps field" in r.json()["problems"][0]


def test_the_annotation_page_knows_the_limit(personas):
    import json

    _, field = project_with_field(personas)  # SlideFactory: 0.5 µm/px
    html = client_for(personas["annotator"]).get(
        f"/annotate/sessions/{session_of(field, personas['annotator']).pk}/").content.decode()
    config = json.loads(html.split('id="annotate-config" type="application/json">')[1].split("</script>")[0])
    assert config["min_point_px"] == 3.0 and config["min_point_words"] == "1.5 µm"
