from rest_framework import serializers

from integration.models import InboundMessage, OutboxMessage


class OutboxMessageSerializer(serializers.ModelSerializer):
    accession = serializers.CharField(source="report.case.accession", read_only=True)
    report_version = serializers.IntegerField(source="report.version", read_only=True)

    class Meta:
        model = OutboxMessage
        fields = ["id", "message_id", "channel", "destination", "report", "accession", "report_version", "state",
                  "attempts", "next_attempt_at", "last_error", "created_at", "delivered_at"]


class InboundMessageSerializer(serializers.ModelSerializer):
    accession = serializers.CharField(source="case.accession", read_only=True, default=None)

    class Meta:
        model = InboundMessage
        fields = ["id", "received_at", "channel", "message_type", "sender", "control_id", "outcome", "error",
                  "accession", "repeats", "duplicate_of"]
