"""`analyze_slide --report report.pdf`: the draft report PDF of the analysis."""

import io
import json

import pytest
from django.core.management import call_command
from pypdf import PdfReader

from cases.choices import ReportStatus
from cases.models import Report

pytestmark = pytest.mark.django_db(transaction=True)


def _text(path):
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages)


def test_report_for_a_slide_of_a_case(synthetic_slide, tmp_path):
    """A PDF only: a pathologist's open draft (their job, their comment) is left as it is."""
    from django.contrib.auth import get_user_model

    from analysis.models import AnalysisJob

    pathologist = get_user_model().objects.create(username="drafting")
    earlier = AnalysisJob.objects.create(slide=synthetic_slide, detector="classic", status="done")
    draft = Report.objects.create(case=synthetic_slide.case, version=1, job=earlier, comment="reviewed",
                                  created_by=pathologist)
    out, pdf = tmp_path / "r.json", tmp_path / "report.pdf"
    call_command("analyze_slide", str(synthetic_slide.pk), "--detector", "classic", "--json", str(out),
                 "--report", str(pdf), "--no-progress")
    result = json.loads(out.read_text())
    assert list(Report.objects.filter(case=synthetic_slide.case)) == [draft]
    draft.refresh_from_db()
    assert draft.status == ReportStatus.DRAFT and draft.job_id == earlier.pk != result["job"]
    assert draft.comment == "reviewed"
    text = _text(pdf)
    assert "Report version 1" in text.replace("\n", " ")  # the open draft's version, not one that does not exist
    assert "DRAFT" in text and synthetic_slide.case.accession in text and "classic" in text
    assert f"{round(result['tps'], 2):.2f}%" in text


def test_report_for_a_bare_file(synthetic_slide_file, tmp_path):
    pdf = tmp_path / "report.pdf"
    call_command("analyze_slide", synthetic_slide_file.path, "--detector", "classic", "--json",
                 str(tmp_path / "r.json"), "--report", str(pdf), "--no-progress")
    text = _text(pdf)
    assert "DRAFT" in text and "not registered" in text and "RESEARCH USE ONLY" in text
    assert not Report.objects.exists()
