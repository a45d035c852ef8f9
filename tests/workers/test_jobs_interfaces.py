"""Jobs are started, cancelled and retried from the REST API, the web pages and the CLI.

In tests django-q2 runs queued tasks synchronously (tests/settings.py), so a started job runs
to its end inside the request.
"""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from analysis.choices import JobStatus
from analysis.models import AnalysisJob

pytestmark = pytest.mark.django_db(transaction=True)


def api_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_start_runs_a_job_and_lists_it(synthetic_slide, personas):
    api = api_for(personas["pathologist"])
    response = api.post("/api/jobs/", {"slide": synthetic_slide.pk, "detector": "classic",
                                       "parameters": {"batch_size": 8}}, format="json")
    assert response.status_code == 201, response.json()
    job = AnalysisJob.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.DONE and job.summary["detections"] > 0
    listed = api.get(f"/api/jobs/?slide={synthetic_slide.pk}").json()
    assert [j["id"] for j in listed["results"]] == [job.pk] and listed["results"][0]["summary"]["tps"] is not None


def test_api_permissions_and_bad_input(synthetic_slide, personas):
    payload = {"slide": synthetic_slide.pk, "detector": "classic"}
    assert api_for(personas["annotator"]).post("/api/jobs/", payload, format="json").status_code == 403
    assert api_for(personas["clinician"]).get("/api/jobs/").status_code == 403
    assert api_for(personas["outsider"]).post("/api/jobs/", payload, format="json").status_code == 400
    bad = api_for(personas["pathologist"]).post("/api/jobs/", {**payload, "parameters": {"tile_px": "big"}},
                                                format="json")
    assert bad.status_code == 400 and "tile_px" in bad.json()["detail"]
    unknown = api_for(personas["pathologist"]).post("/api/jobs/", {**payload, "detector": "nope"}, format="json")
    assert unknown.status_code == 400
    assert AnalysisJob.objects.count() == 0


def test_api_cancel_and_retry_follow_the_job_state(white_slide, personas):
    api = api_for(personas["admin"])
    job_id = api.post("/api/jobs/", {"slide": white_slide.pk, "detector": "classic"}, format="json").json()["id"]
    assert AnalysisJob.objects.get(pk=job_id).status == JobStatus.FAILED  # a blank slide: no tissue
    assert api.post(f"/api/jobs/{job_id}/cancel/").status_code == 409
    retried = api.post(f"/api/jobs/{job_id}/retry/")
    assert retried.status_code == 200 and retried.json()["attempt"] == 2


def test_web_page_starts_and_shows_jobs(synthetic_slide, personas):
    web = Client()
    web.force_login(personas["pathologist"])
    url = f"/slides/{synthetic_slide.pk}/analysis/"
    assert web.post(url, {"detector": "classic"}).status_code == 302
    page = web.get(url).content.decode()
    job = AnalysisJob.objects.get()
    assert job.status == JobStatus.DONE and "Done" in page and f"{job.summary['tps']:.2f} %" in page
    outsider = Client()
    outsider.force_login(personas["outsider"])
    assert outsider.get(url).status_code == 404
    assert outsider.post(f"/jobs/{job.pk}/retry/").status_code == 404


def test_cli_lists_cancels_and_retries(white_slide, capsys):
    call_command("analysis_job", "start", str(white_slide.pk), "--detector", "classic")
    job = json.loads(capsys.readouterr().out)[0]
    assert AnalysisJob.objects.get(pk=job["id"]).status == JobStatus.FAILED
    call_command("analysis_job", "retry", str(job["id"]))
    assert json.loads(capsys.readouterr().out)[0]["attempt"] == 2
    call_command("analysis_job", "list", "--slide", str(white_slide.pk))
    assert len(json.loads(capsys.readouterr().out)) == 1
    with pytest.raises(CommandError, match="expected"):
        call_command("analysis_job", "cancel", str(job["id"]))
    with pytest.raises(CommandError, match="no analysis job"):
        call_command("analysis_job", "cancel", "999999")


def test_a_job_merged_before_the_cut_rule_is_stated_as_reports_state_it(personas, media_root):
    """A summary stored with the uncut TPS (49.996) is stated 49.99 by the API and the Analysis page, as the
    report and the case page state it; rounded it read 50.00."""
    from tests.viewer import client_for, job_with_result

    job = job_with_result(personas["case"], n=100, seed=1)
    AnalysisJob.objects.filter(pk=job.pk).update(summary={**job.summary, "tps": 49.996})
    client = APIClient()
    client.force_authenticate(personas["pathologist"])
    listed = client.get(f"/api/jobs/{job.pk}/").json()
    assert listed["summary"]["tps"] == 49.99
    page = client_for(personas["pathologist"]).get(f"/slides/{job.slide_id}/analysis/").content.decode()
    assert "49.99 %" in page and "50.00 %" not in page
