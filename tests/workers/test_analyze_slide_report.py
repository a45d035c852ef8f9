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
    out, pdf = tmp_path / "r.json", tmp_path / "report.pdf"
    call_command("analyze_slide", str(synthetic_slide.pk), "--detector", "classic", "--json", str(out),
                 "--report", str(pdf), "--no-progress")
    result = json.loads(out.read_text())
    report = Report.objects.get(case=synthetic_slide.case)
    assert report.status == ReportStatus.DRAFT and report.job_id == result["job"]
    text = _text(pdf)
    assert "DRAFT" in text and synthetic_slide.case.accession in text and "classic" in text
    assert f"{round(result['tps'], 2):.2f}%" in text


def test_report_for_a_bare_file(synthetic_slide_file, tmp_path):
    pdf = tmp_path / "report.pdf"
    call_command("analyze_slide", synthetic_slide_file.path, "--detector", "classic", "--json",
                 str(tmp_path / "r.json"), "--report", str(pdf), "--no-progress")
    text = _text(pdf)
    assert "DRAFT" in text and "not registered" in text and "RESEARCH USE ONLY" in text
    assert not Report.objects.exists()
