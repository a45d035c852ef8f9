"""Results out, part 2: sending outbox rows until each peer acknowledges them, in order.

A row is delivered only on an AA (or CA) acknowledgement of its own MSH-10, or an HTTP 2xx, and never
sent after that; a row whose earlier attempt may have reached the peer is sent again with the same
MSH-10 / Idempotency-Key, which a peer that keeps them uses to drop the repeat (most FHIR servers do
not: a duplicate is then possible; docs/integration.md, "An answer that was lost"). Each channel sends
its rows in signing order: a row that fails holds back the rows after it (an amendment never
overtakes its original). Failures wait RETRY_BASE * 2^(attempts-1) seconds, at most RETRY_MAX, with
no limit on attempts; a rejection (AR, HTTP 4xx) stops the row for an administrator (admin action
"Send again"), and so does an HTTP redirect (3xx), which is never followed (send_fhir): "Re-address to
the current endpoint and send again" (readdress) points such rows at the corrected address.

Claiming a row leases it for a while (three timeouts), outside any long transaction: two delivery
runs never send the same row at once, and a run that died mid-send leaves a lease that expires. Each
claim raises the row's claim token, which tells the answer of this claim's attempt from a late one.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from pdl1site.conf import settings
from django.db import transaction
from django.utils import timezone

from cases.choices import ReportStatus
from integration.choices import Channel, OutboxState
from integration.models import OutboxMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    rejected: bool = False
    error: str = ""
    answer: bytes = b""


def backoff(attempts: int) -> datetime.timedelta:
    base, most = settings.PDL1_INTEGRATION_RETRY_BASE_SECONDS, settings.PDL1_INTEGRATION_RETRY_MAX_SECONDS
    return datetime.timedelta(seconds=min(most, base * 2 ** max(0, attempts - 1)))


def deliver_due(now: datetime.datetime | None = None) -> dict[str, int]:
    """Send every due row, channel by channel, in order; {state: rows} of what this run did."""
    done = {"delivered": 0, "failed": 0, "rejected": 0}
    for channel in Channel.values:
        while (row := _claim_next(channel, now)) is not None:
            result = send(row)
            _record(row, result, now)
            key = "delivered" if result.delivered else "rejected" if result.rejected else "failed"
            done[key] += 1
            if not result.delivered:
                break  # the rows after it wait: signing order is kept
    return done


def _claim_next(channel: str, now=None) -> OutboxMessage | None:
    now = now or timezone.now()
    with transaction.atomic():
        row = (OutboxMessage.objects.select_for_update().filter(channel=channel, state=OutboxState.PENDING)
               .order_by("pk").first())
        if row is None or row.next_attempt_at > now or (row.leased_until and row.leased_until > now):
            return None
        if _later_version_delivered(row):
            # A corrected version already reached this peer (a delivery that outlived its lease, then another
            # run): the superseded one sent now would be the receiving system's last word. Kept, not sent.
            # The row is taken from any expired attempt still out: its late answer decides nothing but a success.
            row.state, row.leased_until, row.claim_token = OutboxState.REJECTED, None, row.claim_token + 1
            row.last_error = "not sent: a later version of this report was delivered to this peer first"
            row.save(update_fields=["state", "leased_until", "claim_token", "last_error"])
            return _claim_next(channel, now)
        # connect, write and read each have the timeout: the lease outlasts all three.
        row.leased_until = now + datetime.timedelta(seconds=3 * settings.PDL1_INTEGRATION_TIMEOUT_SECONDS + 5)
        # This attempt's token: _record tells its answer from a late one of an expired attempt by it. A counter
        # raised under the row lock, not the lease end: two claims never share it, and it survives a database
        # or serializer that keeps timestamps less precisely than they were written (then the current
        # attempt's own answer looked late, and was dropped).
        row.claim_token += 1
        row.save(update_fields=["leased_until", "claim_token"])
        return row


def _later_version_delivered(row: OutboxMessage) -> bool:
    """Whether a later version of the row's report (same case, higher version) was delivered on the same
    channel to the same destination."""
    return OutboxMessage.objects.filter(
        channel=row.channel, destination=row.destination, state=OutboxState.DELIVERED,
        report__case_id=row.report.case_id, report__version__gt=row.report.version).exists()


def _record(row: OutboxMessage, result: Attempt, now=None):
    """Record the answer to the attempt that claimed `row` (_claim_next).

    The claim's token is compared in the UPDATE that opens the record: when the row's token is no longer
    the one this attempt's claim set, the lease ran out and another run claimed the row again (or an
    administrator re-addressed it), so this is a late answer of an expired attempt. A late success is
    recorded (the peer has the result: the row is delivered, whatever the later attempt says); a late
    failure or rejection changes nothing but the count of attempts, as the current attempt's answer
    decides. A delivered row is never changed again (a late NACK or HTTP 409 from a repeat would otherwise
    turn it "rejected", to be sent again by "Send again"). Every answer counts an attempt: each was one
    more send, which is what tells a possible duplicate (docs/integration.md, "An answer that was lost")."""
    now = now or timezone.now()
    with transaction.atomic():
        # The current attempt's answer ends its lease. Comparing in the UPDATE, not in Python, also takes the
        # write lock first where there are no row locks (SQLite): two answers of a row are recorded in turn.
        current = OutboxMessage.objects.filter(pk=row.pk, claim_token=row.claim_token).update(leased_until=None) == 1
        fresh = OutboxMessage.objects.select_for_update().get(pk=row.pk)
        fresh.attempts += 1
        if fresh.state == OutboxState.DELIVERED or (not current and not result.delivered):
            fresh.save(update_fields=["attempts"])
            why = ("already delivered" if fresh.state == OutboxState.DELIVERED
                   else "the late answer of an expired attempt, whose row another attempt took over")
            log.warning("outbox %s to %s: answer not recorded, %s: %s", fresh.message_id, fresh.destination, why,
                        "delivered" if result.delivered else result.error)
            return
        fresh.answer = result.answer
        if result.delivered:  # the current attempt's, or a late one's: the peer has it either way
            fresh.state, fresh.delivered_at, fresh.last_error, fresh.leased_until = \
                OutboxState.DELIVERED, now, "", None
        else:  # the current attempt's: its lease is over already
            if result.rejected:
                fresh.state, fresh.last_error = OutboxState.REJECTED, result.error
            else:
                fresh.last_error, fresh.next_attempt_at = result.error, now + backoff(fresh.attempts)
        fresh.save()
    log.info("outbox %s to %s: attempt %d %s %s%s", fresh.message_id, fresh.destination, fresh.attempts, fresh.state,
             fresh.last_error, "" if current else " (the late answer of an expired attempt)")


def retry(rows) -> int:
    """Administrators' "Send again": rejected or waiting rows become due now, except one being sent now
    (its lease holds) and those of a version a later signed amendment superseded: sent after its correction, the superseded result would be the
    receiving system's last word (an amendment never overtakes its original, nor the other way round)."""
    now = timezone.now()
    return _sendable_again(rows, now).update(state=OutboxState.PENDING, next_attempt_at=now)


def _sendable_again(rows, now):
    """The rows "Send again" may make due: not delivered, not superseded, not being sent. A row being sent
    right now keeps its lease: cleared, a second delivery run would send it again beside the first, and a
    correction signed meanwhile could arrive between the two copies."""
    return (rows.exclude(state=OutboxState.DELIVERED).exclude(report__status=ReportStatus.AMENDED)
            .exclude(leased_until__gt=now))


def readdress(rows) -> list[tuple[OutboxMessage, str]]:
    """Administrators' "Re-address to the current endpoint and send again": each row "Send again" would
    make due gets its channel's endpoint as configured now (outbox.peers) and becomes due now; [(row, the
    address it had)]. A row keeps the address it was queued with otherwise, so rows queued to a URL that
    now redirects (rejected, send_fhir) could only wait for that URL to accept the POST itself. Only the
    address changes, never the payload (the signed document). Each row is saved on its own: the audit
    trail (integration.audit) records who changed its destination, from what to what. A channel with no
    endpoint configured now keeps its rows as they are."""
    from integration.outbox import peers

    endpoints, now, done = peers(), timezone.now(), []
    for pk in _sendable_again(rows, now).filter(channel__in=list(endpoints)).values_list("pk", flat=True):
        with transaction.atomic():
            # Read again under the row lock: a delivery run may have claimed or delivered it meanwhile.
            row = _sendable_again(OutboxMessage.objects.filter(pk=pk), now).select_for_update(of=("self",)).first()
            if row is None:
                continue
            old = row.destination
            # A raised token makes the answer of an expired attempt still out, to the old address, a late one:
            # only a success of it is recorded (_record).
            row.destination, row.state, row.next_attempt_at = endpoints[row.channel], OutboxState.PENDING, now
            row.claim_token += 1
            row.save(update_fields=["destination", "state", "next_attempt_at", "claim_token"])
        done.append((row, old))
    return done


def send(row: OutboxMessage) -> Attempt:
    try:
        if row.channel == Channel.HL7V2:
            return send_hl7(row.destination, bytes(row.payload), row.message_id)
        return send_fhir(row.destination, bytes(row.payload), row.message_id)
    except Exception as exc:  # whatever went wrong, the row stays pending and says why
        log.exception("outbox %s: delivery failed", row.message_id)
        return Attempt(False, error=f"{type(exc).__name__}: {exc}")


# --- HL7 v2 over MLLP ------------------------------------------------------------------------------

def send_hl7(destination: str, payload: bytes, message_id: str) -> Attempt:
    from integration.mllp import exchange

    host, _, port = destination.rpartition(":")
    timeout = settings.PDL1_INTEGRATION_TIMEOUT_SECONDS
    try:
        ack = asyncio.run(exchange(host, int(port), payload, timeout))
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        return Attempt(False, error=f"no acknowledgement from {destination}: {type(exc).__name__} {exc}".strip())
    return read_ack(ack, message_id)


def read_ack(ack: bytes, message_id: str) -> Attempt:
    import hl7

    from integration.hl7v2 import has_segment, value_at

    try:
        message = hl7.parse(ack.decode("utf-8", "replace").replace("\n", "\r").strip("\r"))
        code, acked, text = (value_at(message, f"MSA.F{n}").strip() for n in (1, 2, 3))
        err = value_at(message, "ERR.F8").strip() if has_segment(message, "ERR") else ""
    except Exception as exc:
        return Attempt(False, error=f"unreadable acknowledgement: {exc}", answer=ack)
    if acked != message_id:
        return Attempt(False, error=f"acknowledgement of {acked!r}, not of {message_id!r}", answer=ack)
    why = "; ".join(t for t in (text, err) if t)
    if code in ("AA", "CA"):
        return Attempt(True, answer=ack)
    if code in ("AR", "CR"):
        return Attempt(False, rejected=True, error=f"{code}: {why or 'rejected'}", answer=ack)
    return Attempt(False, error=f"{code or 'no MSA-1'}: {why or 'error'}", answer=ack)


# --- FHIR over REST --------------------------------------------------------------------------------

class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Follows no redirect: urllib would re-send a redirected POST (301, 302, 303) as a GET without the
    bundle, whose 200 read as delivered while the result never reached the EHR, and would send the
    Authorization header to whatever host the Location names. The 3xx reaches send_fhir as an HTTPError."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_RefuseRedirects)


def send_fhir(base_url: str, payload: bytes, message_id: str) -> Attempt:
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    try:
        Bundle.model_validate_json(payload)
    except ValidationError as exc:
        return Attempt(False, rejected=True, error=f"the stored bundle is not valid FHIR: {exc.errors()[:3]}")
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
               "Idempotency-Key": message_id, "X-Request-Id": message_id}
    if settings.PDL1_INTEGRATION_RESULTS_FHIR_AUTHORIZATION:
        headers["Authorization"] = settings.PDL1_INTEGRATION_RESULTS_FHIR_AUTHORIZATION
    request = urllib.request.Request(base_url.rstrip("/") + "/Bundle", data=payload, headers=headers, method="POST")
    try:
        with _opener().open(request, timeout=settings.PDL1_INTEGRATION_TIMEOUT_SECONDS) as response:
            return Attempt(True, answer=response.read(64 * 1024))  # 2xx only: anything else is an HTTPError
    except urllib.error.HTTPError as exc:
        body = exc.read(64 * 1024)
        if 300 <= exc.code < 400:
            # A redirect means the configured address is not the FHIR server's (http moved to https, a base
            # path moved): a configuration error, almost always permanent. Rejected, like a 4xx, for an
            # administrator: retried, the row would fail the same way forever and hold back every later row
            # of the channel (signing order), those queued after the address is corrected included, with
            # nothing an administrator could do to release them. Once the address answers the POST itself
            # (or a temporary 302/307 is over), "Send again".
            location = exc.headers.get("Location") if exc.headers else None
            where = urllib.parse.urljoin(request.full_url, location) if location else "(no Location given)"
            return Attempt(False, rejected=True, answer=body, error=(
                f"HTTP {exc.code} redirect from {request.full_url} to {where}: not followed, not delivered. "
                "The FHIR base URL must answer the POST itself (a redirected POST is re-sent as a GET without "
                "the bundle, and the Authorization header would go to the new address). Correct "
                "PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL for results signed from now on; this row keeps the "
                "address it was queued with: send it again once that address answers the POST, or re-address "
                "it to the corrected one (\"Re-address to the current endpoint and send again\")."))
        retryable = exc.code >= 500 or exc.code in (408, 425, 429)
        return Attempt(False, rejected=not retryable, error=f"HTTP {exc.code}: {body[:300].decode('utf-8', 'replace')}",
                       answer=body)
    except (OSError, ValueError) as exc:
        return Attempt(False, error=f"no answer from {base_url}: {type(exc).__name__} {exc}")
