"""A PD-L1 report states positivity read in the membrane only: a job run with compartment=nucleus (or run
while the slide was recorded as Ki-67, its marker corrected since) is refused by the report, and a
clinical job cannot be started in another compartment than its slide's marker's (the research CLI can)."""

import pytest
from rest_framework.test import APIClient

from analysis.choices import Marker
from cases.models import ReportError
from cases.reports import do_create_draft
from tests.viewer import SlideFactory, job_with_result
from workers import queue
from workers.services import JobError, do_start_job

pytestmark = pytest.mark.django_db


def started(slide, **kwargs):
    with queue.collecting():
        return do_start_job(slide, **kwargs)


def test_a_clinical_job_reads_the_markers_compartment_only(personas):
    pdl1 = SlideFactory(case=personas["case"])
    with pytest.raises(JobError, match="compartment nucleus is not where a PD-L1 slide's positivity is read"):
        started(pdl1, detector="classic", parameters={"compartment": "nucleus"})
    assert started(pdl1, detector="classic", parameters={"compartment": "membrane"}).parameters["compartment"] == "membrane"
    assert started(pdl1, detector="classic", parameters={"compartment": "nucleus"}, research=True)
    ki67 = SlideFactory(case=personas["case"], marker=Marker.KI67)
    with pytest.raises(JobError, match="membrane is not where a Ki67 slide's positivity is read .nucleus."):
        started(ki67, detector="classic", parameters={"compartment": "membrane"})
    api = APIClient()
    api.force_authenticate(personas["pathologist"])
    answer = api.post("/api/jobs/", {"slide": pdl1.pk, "detector": "classic", "parameters": {"compartment": "nucleus"}},
                      format="json")
    assert answer.status_code == 400 and "compartment nucleus" in str(answer.json())


@pytest.mark.parametrize("where", ["parameters", "provenance"])
def test_a_report_refuses_a_job_read_in_the_nucleus(personas, media_root, where):
    case = personas["case"]
    job = job_with_result(case, n=500, seed=1)
    if where == "parameters":
        job.parameters = {"compartment": "nucleus"}
    job.provenance = {"kind": "classic", "parameters": {"compartment": "nucleus" if where == "provenance" else
                                                        "membrane", "dab_threshold": "adaptive"}}
    job.save()
    with pytest.raises(ReportError, match=rf"job {job.pk}\) read positivity in the nucleus, not in the membrane"):
        do_create_draft(case, job, personas["pathologist"])
    # The membrane, recorded or by default: reported.
    job.parameters, job.provenance = {}, {"kind": "classic", "parameters": {"compartment": "membrane"}}
    job.save()
    assert do_create_draft(case, job, personas["pathologist"]).job_id == job.pk


def test_a_job_run_before_the_slides_marker_was_corrected_to_pdl1_is_refused(personas, media_root):
    """The slide was recorded as Ki-67: its job read the nucleus (the Ki-67 default). The marker corrected to
    PD-L1 since, the marker check passes; the compartment check refuses the job (draft and signing) until
    the slide is analysed again."""
    case = personas["case"]
    job = job_with_result(case, n=500, seed=2, marker=Marker.KI67)
    with queue.collecting():
        ran = do_start_job(job.slide, detector="classic")
    assert ran.parameters["compartment"] == "nucleus"
    job.parameters, job.provenance = ran.parameters, ran.provenance
    job.save()
    job.slide.marker = Marker.PDL1
    job.slide.save()
    with pytest.raises(ReportError, match="Run the analysis again"):
        do_create_draft(case, job, personas["pathologist"])
    with queue.collecting():
        again = do_start_job(job.slide, detector="classic")
    assert "compartment" not in again.parameters and again.provenance["parameters"]["compartment"] == "membrane"
