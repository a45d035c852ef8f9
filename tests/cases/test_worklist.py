"""The pathologist's worklist (cases by state) and TPS with its category in the clinician's report list."""

import pytest

from analysis.choices import JobStatus
from cases.reports import do_create_draft, do_sign
from tests.factories import CaseFactory
from tests.viewer import DoneJobFactory, SlideFactory, client_for, job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


def section(body, key):
    start = body.index(f'id="worklist-{key}"')
    return body[start:body.index("</section>", start)]


def test_cases_are_grouped_by_what_is_left_to_do(personas, media_root):
    path, department = personas["pathologist"], personas["case"].department
    empty = CaseFactory(department=department, patient__department=department)
    unanalysed = CaseFactory(department=department, patient__department=department)
    SlideFactory(case=unanalysed)
    running = CaseFactory(department=department, patient__department=department)
    DoneJobFactory(slide__case=running, status=JobStatus.RUNNING)
    review = CaseFactory(department=department, patient__department=department)
    job_with_result(review, n=200, seed=1)
    drafted = CaseFactory(department=department, patient__department=department)
    do_create_draft(drafted, job_with_result(drafted, n=200, seed=2), path)
    signed = CaseFactory(department=department, patient__department=department)
    do_sign(do_create_draft(signed, job_with_result(signed, n=200, seed=3), path), path, PASSWORD)

    body = client_for(path).get("/cases/").content.decode()
    expected = {"to_analyse": [empty, unanalysed, running], "to_review": [review], "drafts": [drafted],
                "signed": [signed]}
    everyone = [c for cases in expected.values() for c in cases]
    for key, cases in expected.items():
        text = section(body, key)
        for case in everyone:
            assert (f">{case.accession}<" in text) == (case in cases), (key, case.accession)
    to_analyse = section(body, "to_analyse")
    assert "no slide yet" in to_analyse and "slides not analysed yet" in to_analyse and "analysis running" in to_analyse
    assert f'href="/cases/{drafted.pk}/report/"' in section(body, "drafts")


def test_search_still_narrows_the_worklist(personas):
    body = client_for(personas["pathologist"]).get("/cases/", {"q": "no-such-accession"}).content.decode()
    assert personas["case"].accession not in body and "No matching case." in body


def test_clinicians_report_list_shows_tps_and_category(personas, media_root):
    case = personas["case"]
    job = job_with_result(case, n=3000, seed=5)
    draft = do_create_draft(case, job, personas["pathologist"])
    do_sign(draft, personas["pathologist"], PASSWORD)
    draft.refresh_from_db()
    tps = draft.scores["tps"]
    body = client_for(personas["clinician"]).get("/reports/").content.decode()
    row = body[body.index(case.accession):]
    row = row[:row.index("</tr>")]
    assert f"{tps['value']:.2f} %" in row and tps["category"] in row
