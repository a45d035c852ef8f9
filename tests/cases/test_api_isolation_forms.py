"""The API answers JSON only and filters related objects by id: nothing lists or probes records a user
may not see (DRF's browsable pages built their forms from every row of the related table)."""

import pytest
from django.core.checks import Error
from django.test import Client

from cases.choices import Role
from pdl1site.conf import check_rest_framework
from tests.factories import CaseFactory, DepartmentFactory, make_user

pytestmark = pytest.mark.django_db
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _client(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("url, who", [("/api/cases/", "outsider"), ("/api/slides/", "outsider"),
                                       ("/api/patients/", "outsider"), ("/api/reports/", "clinician"),
                                       ("/api/annotation/sessions/", "annotator"),
                                       ("/api/annotation/projects/", "annotator")])
def test_a_browser_gets_json_that_names_no_other_departments_patient(personas, url, who):
    case = personas["case"]
    other = CaseFactory()
    response = _client(personas[who]).get(url, HTTP_ACCEPT=BROWSER)
    assert response["Content-Type"].startswith("application/json")
    body = response.content.decode()
    for record in (case, other):
        for text in (record.accession, record.patient.mrn, record.patient.family_name):
            assert text not in body


@pytest.mark.parametrize("url, who, name", [
    ("/api/cases/?patient={}", "outsider", "patient"),
    ("/api/slides/?case={}", "outsider", "case"),
    ("/api/reports/?case={}", "clinician", "case"),
])
def test_a_hidden_id_and_a_missing_id_answer_alike(personas, url, who, name):
    case = personas["case"]
    hidden = case.patient.pk if name == "patient" else case.pk
    client = _client(personas[who])
    seen = client.get(url.format(hidden))
    missing = client.get(url.format(hidden + 10_000))
    assert seen.status_code == missing.status_code == 200
    assert seen.json()["count"] == missing.json()["count"] == 0
    assert client.get(url.format("x")).status_code == 400  # not a number: refused whatever exists


def test_an_annotator_filtering_by_another_departments_project_learns_nothing(personas):
    from annotations import services

    other = make_user(Role.PATHOLOGIST, [DepartmentFactory(code="dept-z")], username="zpath")
    project = services.do_create_project(other, "Dept Z project", "lung_squamous", "PD-L1", (), [])
    client = _client(personas["annotator"])
    seen = client.get(f"/api/annotation/sessions/?field__project={project.pk}")
    missing = client.get(f"/api/annotation/sessions/?field__project={project.pk + 10_000}")
    assert seen.status_code == missing.status_code == 200 and seen.json() == missing.json()


def test_a_host_that_keeps_the_browsable_api_or_the_choice_filter_does_not_pass_its_checks(settings):
    assert check_rest_framework(None) == []
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer",
                                                            "rest_framework.renderers.BrowsableAPIRenderer"]}
    assert [e.id for e in check_rest_framework(None)] == ["pdl1site.E002"]
    settings.REST_FRAMEWORK = {key: value for key, value in settings.REST_FRAMEWORK.items()
                               if key != "DEFAULT_RENDERER_CLASSES"}  # DRF's default is the browsable API
    settings.REST_FRAMEWORK["DEFAULT_FILTER_BACKENDS"] = ["django_filters.rest_framework.DjangoFilterBackend"]
    errors = check_rest_framework(None)
    assert [e.id for e in errors] == ["pdl1site.E002", "pdl1site.E003"] and all(isinstance(e, Error) for e in errors)
