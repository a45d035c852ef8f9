from django.db import models


class Channel(models.TextChoices):
    HL7V2 = "hl7v2", "HL7 v2 over MLLP"
    FHIR = "fhir", "FHIR R4 over REST"


class InboundOutcome(models.TextChoices):
    """The acknowledgement code a message was answered with (HL7 table 0008)."""

    ACCEPTED = "AA", "Accepted (AA)"
    ERROR = "AE", "Error (AE): nothing was changed"
    REJECTED = "AR", "Rejected (AR): nothing was changed"


class OutboxState(models.TextChoices):
    PENDING = "pending", "Pending: waiting for its next attempt"
    DELIVERED = "delivered", "Delivered: acknowledged by the peer (AA or HTTP 2xx)"
    REJECTED = "rejected", "Rejected by the peer (AR or HTTP 4xx): an administrator decides"
