"""A case assigned to a pathologist of another department is worked on there, never taken there: its
department, its patient's and its slides' stay with the members of its department (and admins)."""

import pytest
from django.test import Client

from cases.choices import Role
from cases.models import Department
from cases.services import IngestSource, do_ingest_slide
from tests.conftest import shared_slide
from tests.factories import CaseFactory, make_user

pytestmark = pytest.mark.django_db


def _client(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def consult(personas):
    """Case of department A assigned to the outsider (department B) for a consult."""
    personas["case"].assigned_to.add(personas["outsider"])
    return personas


def test_an_assigned_outsider_cannot_move_the_case_or_its_patient_into_their_department(consult):
    case, outsider = consult["case"], consult["outsider"]
    client = _client(outsider)
    assert client.get(f"/api/cases/{case.pk}/").status_code == 200  # the consult works
    moved = client.patch(f"/api/cases/{case.pk}/", {"department": "dept-b"}, content_type="application/json")
    assert moved.status_code == 400 and "dept-a" in moved.json()["department"][0]
    moved = client.patch(f"/api/patients/{case.patient.pk}/", {"department": "dept-b"},
                         content_type="application/json")
    assert moved.status_code == 400
    case.refresh_from_db()
    case.patient.refresh_from_db()
    assert case.department.code == case.patient.department.code == "dept-a"
    # The case's own department may move it, and edits other than the department still work for the consult.
    assert client.patch(f"/api/cases/{case.pk}/", {"specimen": "biopsy"},
                        content_type="application/json").status_code == 200
    make_user(Role.PATHOLOGIST, [Department.objects.get(code="dept-a"), Department.objects.get(code="dept-b")],
              username="both")
    from django.contrib.auth import get_user_model

    both = get_user_model().objects.get(username="both")
    assert _client(both).patch(f"/api/cases/{case.pk}/", {"department": "dept-b"},
                               content_type="application/json").status_code == 200


def test_an_assigned_outsider_cannot_open_a_case_for_that_patient_in_their_department(consult):
    case, outsider = consult["case"], consult["outsider"]
    made = _client(outsider).post("/api/cases/", {"accession": "S26-99999", "patient": case.patient.pk,
                                                  "department": "dept-b", "indication": case.indication,
                                                  "assay_clone": case.assay_clone},
                                  content_type="application/json")
    assert made.status_code == 400 and "patient" in made.json()
    # Nor in the web form: the patient is not offered.
    page = _client(outsider).get("/cases/new/")
    assert page.status_code == 200 and case.patient.family_name not in page.content.decode()
    # A member of the patient's department may.
    made = _client(consult["pathologist"]).post(
        "/api/cases/", {"accession": "S26-99998", "patient": case.patient.pk, "department": "dept-a",
                        "indication": case.indication, "assay_clone": case.assay_clone},
        content_type="application/json")
    assert made.status_code == 201


def test_an_assigned_outsider_cannot_move_the_cases_slide_and_a_hidden_case_answers_like_a_missing_one(consult):
    case, outsider = consult["case"], consult["outsider"]
    slide = do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))], case=case).slide
    own_case = CaseFactory(patient__department=Department.objects.get(code="dept-b"))
    client = _client(outsider)
    moved = client.patch(f"/api/slides/{slide.pk}/", {"case": own_case.pk}, content_type="application/json")
    assert moved.status_code == 400 and "dept-a" in moved.json()["case"][0]
    slide.refresh_from_db()
    assert slide.case_id == case.pk
    hidden = CaseFactory()  # another department's case the outsider may not see
    mine = do_ingest_slide([IngestSource(name="CMU-1-Small-Region.svs",
                                         path=shared_slide("CMU-1-Small-Region.svs"))], case=own_case).slide
    to_hidden = client.patch(f"/api/slides/{mine.pk}/", {"case": hidden.pk}, content_type="application/json")
    to_missing = client.patch(f"/api/slides/{mine.pk}/", {"case": hidden.pk + 10_000},
                              content_type="application/json")
    assert to_hidden.status_code == to_missing.status_code == 400
    assert to_hidden.json()["case"][0].replace(str(hidden.pk), "N") == \
        to_missing.json()["case"][0].replace(str(hidden.pk + 10_000), "N")
    # Within the user's own department a slide still moves.
    other_own = CaseFactory(patient__department=Department.objects.get(code="dept-b"))
    assert client.patch(f"/api/slides/{mine.pk}/", {"case": other_own.pk},
                        content_type="application/json").status_code == 200
