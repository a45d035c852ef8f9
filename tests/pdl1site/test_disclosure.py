"""What the API tells a caller who may not see a record: nothing that tells it from a missing one."""

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(personas, media_root):
    from tests.viewer import job_with_result

    return job_with_result(personas["case"], n=10, seed=1)


def answers(client, *requests):
    return [(lambda r: (r.status_code, r.content))(getattr(client, method)(url, data, format="json"))
            for method, url, data in requests]


def test_jobs_answer_alike_for_invisible_and_missing_ids(personas, job):
    outsider = APIClient()
    outsider.force_login(personas["outsider"])
    missing_slide, missing_job = job.slide_id + 10_000, job.pk + 10_000

    def probe(slide_id, job_id):
        got = answers(outsider, ("get", f"/api/jobs/{job_id}/", None), ("get", f"/api/jobs/?slide={slide_id}", None),
                      ("post", f"/api/jobs/{job_id}/cancel/", None), ("post", f"/api/jobs/{job_id}/retry/", None))
        created = outsider.post("/api/jobs/", {"slide": slide_id}, format="json")
        text = created.content.decode().replace(str(slide_id), "ID")
        return got, (created.status_code, text)

    invisible, missing = probe(job.slide_id, job.pk), probe(missing_slide, missing_job)
    assert invisible == missing
    (detail, listing, cancel, retry), created = invisible
    assert detail[0] == cancel[0] == retry[0] == 404 and listing[0] == 200 and created[0] == 400
    # the owner's department still finds and filters its own
    own = APIClient()
    own.force_login(personas["pathologist"])
    assert own.get(f"/api/jobs/?slide={job.slide_id}").json()["count"] == 1


@pytest.mark.parametrize("url", ["/api/schema/", "/api/schema/swagger-ui/"])
def test_schema_is_for_signed_in_users_only(personas, url):
    assert APIClient().get(url).status_code == 401
    client = APIClient()
    client.force_login(personas["annotator"])
    assert client.get(url).status_code == 200
