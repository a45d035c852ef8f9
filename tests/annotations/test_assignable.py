"""Through the API as on the pages, a manager assigns only the annotators the page offers
(services.assignable_annotators: their own departments'), and a refusal says nothing of who exists."""

import pytest
from django.test import Client

from annotations.models import AnnotationProject
from cases.choices import Role
from cases.models import Department
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def _errors(response):
    body = response.json()
    return body.get("annotators") or body.get("problems") or body


def test_another_departments_annotator_is_refused_like_an_unknown_name(personas):
    foreign = make_user(Role.ANNOTATOR, [Department.objects.get(code="dept-b")], username="foreign_annot")
    make_user(Role.CLINICIAN, [Department.objects.get(code="dept-a")], username="a_clinician")
    client = _client(personas["pathologist"])
    answers = {}
    for name in ("foreign_annot", "no_such_user", "a_clinician"):
        response = client.post("/api/annotation/projects/", {"name": f"Project {name}", "annotators": [name]},
                               content_type="application/json")
        assert response.status_code == 400, name
        answers[name] = str(_errors(response)).replace(name, "NAME")
    assert len(set(answers.values())) == 1, answers
    assert not AnnotationProject.objects.exists()
    assert _client(foreign).get("/api/annotation/projects/").json()["count"] == 0
    made = client.post("/api/annotation/projects/", {"name": "Project ok", "annotators": ["annotator"]},
                       content_type="application/json")
    assert made.status_code == 201
    project = AnnotationProject.objects.get()
    added = client.post(f"/api/annotation/projects/{project.pk}/annotators/", {"annotators": ["foreign_annot"]},
                        content_type="application/json")
    assert added.status_code == 400 and not project.annotators.filter(username="foreign_annot").exists()
