"""{{ report.scores|qc_statement }}: the report's sentence on its slide's check before scoring, the one
the PDF and FHIR print (cases.reports.qc_statement), so the report pages show what the documents say."""

from django import template

from cases.reports import qc_statement as _qc_statement

register = template.Library()


@register.filter
def qc_statement(scores) -> str:
    return _qc_statement(scores or {})
