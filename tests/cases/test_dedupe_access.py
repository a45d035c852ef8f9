"""sha256 de-duplication never crosses what the uploader may see (issue 14, item 6)."""

import pytest
from rest_framework.test import APIClient

from cases.choices import Role
from cases.models import Slide
from tests.conftest import shared_slide
from tests.factories import CaseFactory, make_user

pytestmark = pytest.mark.django_db


def upload(user, path, **fields):
    client = APIClient()
    client.force_authenticate(user)
    with open(path, "rb") as fh:
        return client.post("/api/slides/", {"files": fh, **fields}, format="multipart")


def test_other_departments_copy_is_never_returned(personas):
    first = upload(personas["pathologist"], shared_slide("small.svs"), case=personas["case"].accession)
    assert first.status_code == 201, first.json()
    outsider_case = CaseFactory(patient__department=personas["outsider"].profile.departments.get())
    second = upload(personas["outsider"], shared_slide("small.svs"), case=outsider_case.accession)
    assert second.status_code == 201, second.json()
    body = second.json()
    assert body["duplicate"] is False and body["id"] != first.json()["id"]
    assert body["case"] == outsider_case.pk and "already stored" not in str(body)
    assert personas["case"].accession not in str(body)
    # two slides of the same content, each in its own department's record
    rows = Slide.objects.filter(sha256=first.json()["sha256"]).order_by("pk")
    assert [s.case_id for s in rows] == [personas["case"].pk, outsider_case.pk]
    assert rows[0].file.name != rows[1].file.name  # a file of its own: deleting one never breaks the other
    assert all(s.file.storage.exists(s.file.name) for s in rows)


def test_an_unfiled_upload_of_another_user_is_not_returned(personas):
    first = upload(personas["outsider"], shared_slide("small.svs"))  # no case: only the uploader sees it
    second = upload(personas["pathologist"], shared_slide("small.svs"))
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["id"] != first.json()["id"] and second.json()["duplicate"] is False


def test_a_copy_the_uploader_sees_is_still_deduplicated(personas):
    colleague = make_user(Role.PATHOLOGIST, list(personas["pathologist"].profile.departments.all()),
                          username="colleague")
    first = upload(personas["pathologist"], shared_slide("small.svs"), case=personas["case"].accession)
    second = upload(colleague, shared_slide("small.svs"))
    assert second.status_code == 200 and second.json()["duplicate"] is True
    assert second.json()["id"] == first.json()["id"]
    assert Slide.objects.count() == 1
