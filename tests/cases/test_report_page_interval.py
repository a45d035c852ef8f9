"""The report pages state the TPS's 95 % interval and the near-cut-off warning, as the PDF and the FHIR
bundle do (issue 15 item 6): a clinician reading the web page must not miss what the documents say."""

import pytest
from django.test import Client

from analysis.scoring import NEAR_CUTOFF, interval_range
from cases.choices import ScoreType
from cases.models import Cutoff, CutoffTable
from cases.reports import do_create_draft, do_sign
from tests.viewer import job_with_result
from viewer.scores import job_scores

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"


def page(user, url):
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_signed_report_page_shows_the_interval_and_the_near_cutoff_warning(personas, media_root):
    case = personas["case"]
    job = job_with_result(case, n=400, seed=21)
    table = CutoffTable.objects.get(assay_clone=case.assay_clone, indication=case.indication, score_type=ScoreType.TPS)
    Cutoff.objects.create(table=table, lower_bound=round(job_scores(job)["tps"]), label="lab's own category")
    report = do_sign(do_create_draft(case, job, personas["pathologist"]), personas["pathologist"], PASSWORD)
    tps = report.scores["tps"]
    assert tps["near_cutoff"]
    interval = f"95 % interval {interval_range(tps['interval']['low'], tps['interval']['high'])} %"  # outward
    for user, url in ((personas["clinician"], f"/reports/{report.pk}/"),
                      (personas["pathologist"], f"/cases/{case.pk}/report/")):
        html = page(user, url)
        assert 'id="report-tps-interval" class="flag"' in html
        assert NEAR_CUTOFF in html and interval in html


def test_a_result_far_from_every_cutoff_shows_its_interval_without_the_warning(personas, media_root):
    case = personas["case"]
    job = job_with_result(case, n=400, seed=21)
    table = CutoffTable.objects.get(assay_clone=case.assay_clone, indication=case.indication, score_type=ScoreType.TPS)
    table.cutoffs.exclude(lower_bound=0).delete()  # no cut-off inside any interval
    draft = do_create_draft(case, job, personas["pathologist"])
    assert not draft.scores["tps"]["near_cutoff"]
    html = page(personas["pathologist"], f"/cases/{case.pk}/report/")
    assert 'id="report-tps-interval">' in html and NEAR_CUTOFF not in html
