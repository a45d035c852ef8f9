"""Results out, part 1: the outbox rows of a signed report version, written in its signing transaction.

cases sends report_signed from Report.sign inside the signing transaction (cases.signals); this
receiver (connected in IntegrationConfig.ready) builds each configured peer's message from the
documents stored at that signing and writes it as a pending row. The signature and its outbox rows
commit together or not at all; integration.delivery sends them afterwards.
"""

from __future__ import annotations

from pdl1site.conf import settings
from django.db import transaction

from cases.choices import DocumentKind
from cases.documents import stored_documents
from integration.choices import Channel
from integration.models import OutboxMessage


def message_id(report, channel: str) -> str:
    """One id per report version and channel (MSH-10, at most 20 characters; the FHIR Idempotency-Key)."""
    return f"PDL1R{report.pk}{'H' if channel == Channel.HL7V2 else 'F'}"


def peers() -> dict[str, str]:
    configured = {Channel.HL7V2: settings.PDL1_INTEGRATION_RESULTS_MLLP_PEER,
                  Channel.FHIR: settings.PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL}
    return {channel: destination for channel, destination in configured.items() if destination}


def enqueue_results(sender, report, **kwargs) -> list[OutboxMessage]:
    """Receiver of cases.signals.report_signed: a pending outbox row per configured peer."""
    from integration.hl7v2 import oru_r01

    destinations = peers()
    if not destinations:
        return []
    documents = stored_documents(report)
    pdf, fhir = documents[DocumentKind.PDF].data, documents[DocumentKind.FHIR].data
    rows = []
    for channel, destination in destinations.items():
        mid = message_id(report, channel)
        payload = oru_r01(report, pdf, fhir, mid) if channel == Channel.HL7V2 else fhir
        rows.append(OutboxMessage.objects.create(report=report, channel=channel, message_id=mid,
                                                 destination=destination, payload=payload))
    # robust: a broker that is down must not turn a committed signing into an error (the schedule delivers).
    transaction.on_commit(kick_delivery, robust=True)
    return rows


def kick_delivery():
    """Deliver now rather than at the next scheduled run (integration.delivery.deliver_due, every minute)."""
    from django_q.tasks import async_task

    async_task("integration.delivery.deliver_due", task_name="integration-deliver", group="integration")
