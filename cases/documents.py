"""The documents of a report version: rendered once at signing, stored with their sha256, served as stored.

A signed (or amended, i.e. superseded) version is a clinical record: every download serves the bytes
stored when it was signed, whatever happened to the patient, the case, the corrections or the regions
since. Drafts are not records and render live.

The PDF cannot state its own sha256, so the two documents are chained: the FHIR bundle is rendered
first and its sha256 is printed in the PDF footer ("FHIR record sha256"); anyone holding both files
can check the pair with `sha256sum`. The sha256 of the exact bytes of each download is in the
`Repr-Digest` (RFC 9530) and `X-Content-SHA256` response headers and in the report's API fields.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import transaction

from cases.choices import DocumentKind
from cases.models import Report, ReportDocument

MEDIA_TYPES = {DocumentKind.PDF: "application/pdf", DocumentKind.FHIR: "application/fhir+json"}


@dataclass(frozen=True)
class Document:
    kind: str
    data: bytes
    sha256: str
    stored: bool  # False: a draft, rendered live for this download

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.kind]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render_fhir(report: Report) -> bytes:
    from cases.reports import fhir_bundle

    return json.dumps(fhir_bundle(report), indent=2).encode("utf-8")


def render_pdf(report: Report, fhir_sha256: str | None = None) -> bytes:
    from cases.report_pdf import build_pdf

    return build_pdf(report, record_sha256=fhir_sha256)


def store_at_signing(sender, report: Report, **kwargs) -> None:
    """Receiver of cases.signals.report_documents (Report.sign, in the signing transaction)."""
    store_documents(report, at_signing=True)


def store_documents(report: Report, *, at_signing: bool) -> dict[str, ReportDocument]:
    """Render the FHIR bundle, then the PDF that names its sha256, and store both (once)."""
    fhir = render_fhir(report)
    pdf = render_pdf(report, fhir_sha256=_sha256(fhir))
    return {kind: ReportDocument.objects.create(report=report, kind=kind, media_type=MEDIA_TYPES[kind],
                                                content=data, at_signing=at_signing)
            for kind, data in ((DocumentKind.FHIR, fhir), (DocumentKind.PDF, pdf))}


def stored_documents(report: Report) -> dict[str, ReportDocument]:
    return {doc.kind: doc for doc in ReportDocument.objects.filter(report=report)}


def served_document(report: Report, kind: str) -> Document:
    """What a download of `report` serves: the stored bytes of a signed or amended version (stored
    now, once, for a version signed before documents were stored), or a live rendering of a draft."""
    if not report.is_locked:
        data = render_fhir(report) if kind == DocumentKind.FHIR else render_pdf(report)
        return Document(kind, data, _sha256(data), stored=False)
    doc = ReportDocument.objects.filter(report=report, kind=kind).first()
    if doc is None:
        with transaction.atomic():
            Report.objects.select_for_update().get(pk=report.pk)  # one backfill, however many downloads
            docs = stored_documents(report) or store_documents(report, at_signing=False)
        doc = docs[kind]
    return Document(kind, doc.data, doc.sha256, stored=True)
