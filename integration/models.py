"""What crossed the hospital boundary: every inbound order message as received, and the outbox of results.

Inbound messages are kept whole (raw bytes) with the answer they got; a repeated message control id
is answered with the stored answer and changes nothing (idempotency). Outbox rows are written in the
signing transaction (integration.outbox) and leave only through integration.delivery.
"""

from django.db import models
from django.utils import timezone

from integration.choices import Channel, InboundOutcome, OutboxState


class InboundMessage(models.Model):
    channel = models.CharField(max_length=8, choices=Channel.choices)
    control_id = models.CharField(max_length=199, help_text="MSH-10 (HL7 v2), or the FHIR request's idempotency key")
    sender = models.CharField(max_length=200, blank=True, help_text="MSH-3^MSH-4, or the API user")
    message_type = models.CharField(max_length=32, blank=True)
    raw = models.BinaryField(help_text="the message exactly as received")
    sha256 = models.CharField(max_length=64)
    outcome = models.CharField(max_length=2, choices=InboundOutcome.choices)
    error = models.TextField(blank=True)
    answer = models.BinaryField(help_text="the ACK/NACK or HTTP body sent back")
    patient = models.ForeignKey("cases.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField(default=timezone.now)
    repeats = models.PositiveIntegerField(default=0, help_text="times the same message came again (answered as stored)")
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                     help_text="a different message that reused this control id (refused)")

    class Meta:
        ordering = ["-received_at", "-pk"]
        constraints = [models.UniqueConstraint(
            fields=["channel", "sender", "control_id"], name="one_inbound_message_per_control_id",
            condition=models.Q(duplicate_of__isnull=True) & ~models.Q(control_id=""))]
        permissions = [("submit_orders", "Submit orders (HL7 v2 or FHIR ServiceRequest) as a hospital system")]

    def __str__(self):
        return f"{self.channel} {self.message_type} {self.control_id} ({self.outcome})"


class OutboxMessage(models.Model):
    """One result message for one peer: built once, at signing, and sent until the peer acknowledges it."""

    report = models.ForeignKey("cases.Report", on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    message_id = models.CharField(max_length=64, unique=True,
                                  help_text="MSH-10 of the ORU, or the Idempotency-Key of the FHIR POST")
    destination = models.CharField(max_length=300, help_text="host:port or the FHIR base URL, as configured at signing")
    payload = models.BinaryField()
    state = models.CharField(max_length=10, choices=OutboxState.choices, default=OutboxState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    leased_until = models.DateTimeField(null=True, blank=True, help_text="a delivery is in progress until then")
    claim_token = models.PositiveIntegerField(
        default=0, help_text="raised each time a delivery run takes the row (or an administrator re-addresses it): "
                             "an attempt's answer decides only while the token is still the one its claim set")
    last_error = models.TextField(blank=True)
    answer = models.BinaryField(blank=True, default=b"", help_text="the peer's last ACK or HTTP answer")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["channel", "state", "next_attempt_at"])]

    def __str__(self):
        return f"{self.channel} {self.message_id} ({self.state})"
