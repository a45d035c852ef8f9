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
    assert [j["id"] for j in listed["results"]] == [job.pk]
    before = listed["results"][0]["detections_before_review"]
    assert before["counts"] == job.summary["counts"] and before["detections"] == job.summary["detections"]
    assert "tps" not in before and "summary" not in listed["results"][0]
    assert before["note"].startswith("detections before review (whole slide, uncorrected)")


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
    assert job.status == JobStatus.DONE and "Done" in page
    # The merge's counts, labelled as such, and no TPS: the job's one TPS is the viewer's (corrected, in regions).
    assert "Detections before review" in page and "whole slide, uncorrected" in page
    assert f'<td class="before-review">{job.summary["counts"]["positive"]}</td>' in page
    assert f"{job.summary['tps']:.2f} %" not in page
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


def test_the_jobs_api_and_page_state_no_uncorrected_tps(personas, media_root):
    """The merge's whole-slide, uncorrected TPS (49.996 here; the viewer's counts inside a region say
    otherwise) is stated by neither the API nor the Analysis page: they used to show it as the job's TPS,
    beside the viewer's and the report's corrected one, with nothing saying which was which."""
    from tests.viewer import client_for, job_with_result
    from viewer.models import Region

    job = job_with_result(personas["case"], n=3000, seed=1)
    AnalysisJob.objects.filter(pk=job.pk).update(summary={**job.summary, "tps": 49.996})
    Region.objects.create(slide_id=job.slide_id, drawn_on=job, version=1, author=personas["pathologist"],
                          kind="exclude", vertices=[[0, 0], [4000, 0], [4000, 6000], [0, 6000]])
    client = APIClient()
    client.force_authenticate(personas["pathologist"])
    listed = client.get(f"/api/jobs/{job.pk}/").json()
    assert "summary" not in listed and "tps" not in listed["detections_before_review"]
    assert listed["detections_before_review"]["counts"] == job.summary["counts"]
    assert f"/api/viewer/jobs/{job.pk}/corrections/" in listed["detections_before_review"]["note"]
    page = client_for(personas["pathologist"]).get(f"/slides/{job.slide_id}/analysis/").content.decode()
    assert "49.99" not in page and "50.00" not in page and "TPS</th>" not in page
    assert "Detections before review" in page
