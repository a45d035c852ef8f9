"""Every inbound message: kept whole, answered once, idempotent on its control id, one transaction.

The order's changes, the kept message and its answer commit together; a refused order rolls its
changes back (a savepoint) and is kept with its NACK. The same message again (same sender, same
control id, same bytes, or for HL7 v2 bytes that differ only in MSH-7) gets the stored answer and
changes nothing; a different message reusing a control id is refused (AR) and kept too. Only a
database that is down or unreachable leaves a message unanswered (the sender resends it).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Callable

from django.db import DataError, IntegrityError, InterfaceError, OperationalError, transaction

from integration.choices import Channel, InboundOutcome
from integration.models import InboundMessage
from integration.orders import FiledOrder, OrderError

log = logging.getLogger(__name__)
Answer = Callable[[str, OrderError | None, FiledOrder | None], bytes]


def receive(channel: str, control_id: str, sender: str, message_type: str, raw: bytes,
            process: Callable[[], FiledOrder], answer: Answer,
            same: Callable[[bytes, bytes], bool] | None = None) -> InboundMessage:
    """Process one message (or replay the stored answer of a repeat: the same bytes, or what `same` says is
    the same message); the kept row with its answer."""
    # The keys as they are stored: a repeat looked up by longer ones was never found, was processed again and
    # broke the unique constraint, every time it came
    control_id, sender = control_id[:199], sender[:200]
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _receive(channel, control_id, sender, message_type, raw, process, answer, same,
                                last_try=attempt == 1)
        except IntegrityError as exc:  # the same control id committed concurrently: the retry finds it
            failure = exc
        except DataError as exc:
            failure = exc
            break
    # Not a repeat we can explain, or a row the database refuses: answered all the same (not kept), else the
    # sender resends it forever
    log.error("inbound %s message %r could not be kept: %s", channel, control_id, failure)
    error = OrderError(f"the message could not be recorded ({type(failure).__name__}): send it again with a new "
                       "control id, or ask the laboratory", code="207")
    row = InboundMessage(channel=channel, control_id=control_id, sender=sender, message_type=message_type[:32],
                         raw=raw, outcome=InboundOutcome.ERROR, error=error.text)
    row.answer = answer(row.outcome, error, None)
    return row


def _receive(channel, control_id, sender, message_type, raw, process, answer, same, last_try) -> InboundMessage:
    sha256 = hashlib.sha256(raw).hexdigest()
    first = (InboundMessage.objects.select_for_update()
             .filter(channel=channel, sender=sender, control_id=control_id, duplicate_of=None).first()
             if control_id else None)
    row = InboundMessage(channel=channel, control_id=control_id, sender=sender, message_type=message_type[:32],
                         raw=raw, sha256=sha256)
    if first is not None and (first.sha256 == sha256 or (same is not None and same(bytes(first.raw), raw))):
        first.repeats += 1
        first.save(update_fields=["repeats"])
        return first
    filed = error = None
    if first is not None:
        error = OrderError(f"message control id {control_id!r} was already used by message {first.pk} "
                           f"({first.received_at:%Y-%m-%d %H:%M:%S} UTC) with different content", reject=True,
                           location="MSH^1^10", code="207")
        row.duplicate_of = first
    else:
        try:
            with transaction.atomic():  # a savepoint: a refused order leaves nothing behind
                filed = process()
        except OrderError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, (OperationalError, InterfaceError)) or (
                    isinstance(exc, IntegrityError) and not last_try):
                # The database, not the message (down, restarting; a row made concurrently, which the retry
                # sees): nothing is committed, the sender gets no answer and sends it again.
                raise
            # A message shaped as no reader expected (a short PID, no code), or a value the database refuses
            # (DataError), or a conflict that the retry did not explain: kept and answered (AE) like any refused
            # order. Else the whole message rolled back, no answer went out, and the sender resent it forever,
            # holding up the orders queued behind it.
            log.exception("inbound %s message %r could not be read", channel, control_id)
            error = OrderError(f"the message could not be read ({type(exc).__name__}: {exc})"[:300], code="207")
    row.outcome = (InboundOutcome.ACCEPTED if error is None
                   else InboundOutcome.REJECTED if error.reject else InboundOutcome.ERROR)
    row.error = error.text if error else ""
    row.patient, row.case = (filed.patient, filed.case) if filed else (None, None)
    row.answer = answer(row.outcome, error, filed)
    row.save()
    return row


def new_ack_id() -> str:
    return uuid.uuid4().hex[:20].upper()


def handle_hl7(raw: bytes, *, oversized: bool = False) -> bytes:
    """The ACK or NACK of one HL7 v2 message received over MLLP (`oversized`: `raw` is only the first
    PDL1_INTEGRATION_MAX_MESSAGE_BYTES of a longer message, which is refused)."""
    from pdl1site.conf import settings

    from integration import hl7v2
    from integration.orders import do_file_order

    if oversized:
        raw = raw[:settings.PDL1_INTEGRATION_MAX_MESSAGE_BYTES]
    fields = hl7v2.header_fields(raw)
    control_id = fields.get("control_id", "").strip()
    sender = f"{fields.get('app', '')}^{fields.get('facility', '')}"
    try:
        if len(sender) > 200:  # a key that does not fit would be cut, and two senders could share it
            raise OrderError(f"the sending application and facility (MSH-3^MSH-4) are {len(sender)} characters long: "
                             "at most 200 are accepted", location="MSH^1^3", code="207", reject=True)
        if oversized:
            raise OrderError(f"the message is larger than {settings.PDL1_INTEGRATION_MAX_MESSAGE_BYTES} bytes "
                             "(PDL1_INTEGRATION_MAX_MESSAGE_BYTES); its beginning is kept", location="MSH^1",
                             code="207", reject=True)
        message, header = hl7v2.decode(raw)
        failure = None
    except OrderError as exc:
        message, header, failure = None, None, exc

    def process() -> FiledOrder:
        if failure is not None:
            raise failure
        hl7v2.check_order_type(header)
        return do_file_order(hl7v2.read_order(message))

    def answer(outcome, error, filed):
        return hl7v2.answer(fields, outcome, control_id, new_ack_id(), error)

    message_type = header.message_type if header else ""
    return bytes(receive(Channel.HL7V2, control_id, sender, message_type, raw, process, answer,
                         same=hl7v2.same_message).answer)


def handle_fhir_service_request(body: bytes, user, idempotency_key: str = "") -> tuple[int, bytes]:
    """(HTTP status, OperationOutcome JSON) of one POSTed ServiceRequest: 201 a case was created, 200 updated
    or unchanged (or a repeat), 400 not a valid ServiceRequest, 422 valid but refused (nothing changed)."""
    import json

    from integration import fhir_orders
    from integration.orders import FHIR_LOCATIONS, do_file_order

    statuses = {}

    def process() -> FiledOrder:
        _, order = fhir_orders.read_service_request(body)
        return do_file_order(order, locations=FHIR_LOCATIONS)

    def answer(outcome, error, filed):
        if error is not None:
            statuses["status"] = 400 if error.reject else 422
            data = fhir_orders.outcome("error", "invalid" if error.reject else "business-rule", error.text,
                                       error.location if "." in error.location else "")
        else:
            statuses["status"] = 201 if filed.created_case else 200
            data = fhir_orders.outcome(
                "information", "informational",
                f"case {filed.case.accession} {'created' if filed.created_case else 'updated'} for patient "
                f"{filed.patient.mrn} ({'new' if filed.created_patient else 'known'})")
        return json.dumps({"status": statuses["status"], "outcome": data}).encode("utf-8")

    control_id = fhir_orders.control_id_of(body, idempotency_key)
    row = receive(Channel.FHIR, control_id, user.get_username(), "ServiceRequest", body, process, answer)
    stored = json.loads(bytes(row.answer))
    return stored["status"], json.dumps(stored["outcome"]).encode("utf-8")
