"""Positive and negative look the same on every page: the annotation pages draw them in the colours of the one
vocabulary (analysis.labels), as the viewer and the GeoJSON export do, whatever colours the project stored.

Projects made before the shared vocabulary (commit 8708e67) stored the colours of that time (#ff0000 and
#ffff00) and no migration rewrote them; the pages passed them on, so their annotators and reviewers saw another
red and yellow than the viewer's. Extra labels keep the project's own colour.
"""

import json
import re

import pytest

from analysis.labels import LABEL_HEX, NEGATIVE, POSITIVE
from annotations import services
from annotations.models import AnnotationProject
from tests.annotations import client_for, project_with_field, session_of

from tests.conftest import media_root, personas  # noqa: F401

pytestmark = pytest.mark.django_db

OLD_LABELS = [{"name": "positive", "title": "PD-L1-positive tumour nucleus", "colour": "#ff0000"},
              {"name": "negative", "title": "PD-L1-negative tumour nucleus", "colour": "#ffff00"},
              {"name": "immune", "title": "immune cell", "colour": "#00aaff"}]
SHOWN = {"positive": LABEL_HEX[POSITIVE], "negative": LABEL_HEX[NEGATIVE], "immune": "#00aaff"}


@pytest.fixture
def old_project(personas):
    project, field = project_with_field(personas, extra_labels=[{"name": "immune", "colour": "#00aaff"}])
    AnnotationProject.objects.filter(pk=project.pk).update(labels=OLD_LABELS)
    project.refresh_from_db()
    return project, field


def config(html, element_id):
    return json.loads(html.split(f'id="{element_id}" type="application/json">')[1].split("</script>")[0])


def chips(html):
    """The label colours the page's swatches show, in order."""
    return re.findall(r"--label-colour:\s*(#[0-9a-fA-F]{6})", html)


def assert_vocabulary(html, labels):
    assert {lab["name"]: lab["colour"] for lab in labels} == SHOWN
    assert "#ff0000" not in html and "#ffff00" not in html
    assert set(chips(html)) == set(SHOWN.values())


def test_the_annotation_page_draws_old_projects_in_the_vocabularys_colours(personas, old_project):
    _, field = old_project
    session = session_of(field, personas["annotator"])
    html = client_for(personas["annotator"]).get(f"/annotate/sessions/{session.pk}/").content.decode()
    labels = config(html, "annotate-config")["labels"]
    assert [lab["name"] for lab in labels] == ["positive", "negative", "immune"]
    assert_vocabulary(html, labels)


def test_the_review_and_project_pages_draw_old_projects_in_the_vocabularys_colours(personas, old_project):
    project, field = old_project
    annotator = personas["annotator"]
    services.do_save_points(session_of(field, annotator), annotator, 0, [[1100, 1100, "positive"],
                                                                         [1200, 1200, "immune"]])
    client = client_for(personas["pathologist"])
    html = client.get(f"/annotate/fields/{field.pk}/review/").content.decode()
    assert_vocabulary(html, config(html, "review-config")["labels"])
    html = client.get(f"/annotate/projects/{project.pk}/").content.decode()
    assert "#ff0000" not in html and "#ffff00" not in html
    assert chips(html)[:3] == [SHOWN["positive"], SHOWN["negative"], SHOWN["immune"]]
    # the stored label set itself is not rewritten (its names are what the points and exports use)
    project.refresh_from_db()
    assert project.labels == OLD_LABELS


def test_the_api_gives_the_vocabularys_colours_too(personas, old_project):
    project, field = old_project
    manager = client_for(personas["pathologist"])
    listed = manager.get(f"/api/annotation/projects/{project.pk}/").json()
    assert {lab["name"]: lab["colour"] for lab in listed["labels"]} == SHOWN
    session = session_of(field, personas["annotator"])
    mine = client_for(personas["annotator"]).get(f"/api/annotation/sessions/{session.pk}/").json()
    assert {lab["name"]: lab["colour"] for lab in mine["labels"]} == SHOWN
