"""The report pages' sentences, the ones the PDF and FHIR print, so the pages show what the documents say:
{{ report.scores|qc_statement }} (the slide's check before scoring, cases.reports.qc_statement) and
{{ report.scores.tps|interval_statement }} (the 95 % interval with the near-cut-off warning first,
analysis.scoring.interval_text)."""

from django import template

from analysis.scoring import interval_text
from cases.reports import qc_statement as _qc_statement

register = template.Library()


@register.filter
def qc_statement(scores) -> str:
    return _qc_statement(scores or {})


@register.filter
def interval_statement(part) -> str:
    return interval_text(part) if part and part.get("interval") else ""
