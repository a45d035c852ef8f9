from django.contrib import admin, messages

from analysis.admin import ReadOnlyRecordAdmin
from cases.admin import AuditedAccessAdmin
from cases.choices import ReportStatus
from integration.choices import OutboxState
from integration.delivery import readdress, retry
from integration.models import InboundMessage, OutboxMessage
from integration.outbox import peers


def _text(data) -> str:
    return bytes(data).decode("utf-8", "replace").replace("\r", "\n")


@admin.register(InboundMessage)
class InboundMessageAdmin(AuditedAccessAdmin, ReadOnlyRecordAdmin):
    """Every order message as received, with its answer: read-only (it is the record of what arrived). Its
    page shows the raw message (the patient's name, birth date, MRN): each view is audited."""

    list_display = ["received_at", "channel", "message_type", "sender", "control_id", "outcome", "case", "repeats"]
    list_filter = ["channel", "outcome", "message_type"]
    search_fields = ["control_id", "sender", "case__accession", "patient__mrn"]
    fields = ["received_at", "channel", "message_type", "sender", "control_id", "outcome", "error", "patient", "case",
              "repeats", "duplicate_of", "sha256", "message", "reply"]
    readonly_fields = fields

    @admin.display(description="message as received")
    def message(self, obj):
        return _text(obj.raw)

    @admin.display(description="answer sent")
    def reply(self, obj):
        return _text(obj.answer)


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """The state of each result delivery; "Send again" makes waiting or rejected rows due now, "Re-address"
    also points them at the endpoint configured now (rows queued to an address that now redirects)."""

    list_display = ["message_id", "channel", "destination", "report", "state", "attempts", "next_attempt_at",
                    "delivered_at", "last_error"]
    list_filter = ["state", "channel"]
    search_fields = ["message_id", "report__case__accession"]
    fields = ["message_id", "channel", "destination", "report", "state", "attempts", "next_attempt_at", "leased_until",
              "last_error", "created_at", "delivered_at", "peer_answer"]
    readonly_fields = fields
    actions = ["send_again", "readdress_and_send_again"]

    @admin.display(description="peer's last answer")
    def peer_answer(self, obj):
        return _text(obj.answer)

    @admin.action(description="Send again (now)")
    def send_again(self, request, queryset):
        count = retry(queryset)
        self.message_user(request, f"{count} message(s) will be sent at the next delivery run.", messages.SUCCESS)
        self._warn_superseded(request, queryset)

    @admin.action(description="Re-address to the current endpoint and send again", permissions=["change"])
    def readdress_and_send_again(self, request, queryset):
        # Saved row by row (delivery.readdress): the audit trail names this user and keeps the old address.
        done = readdress(queryset)
        moved = sum(old != row.destination for row, old in done)
        self.message_user(request, f"{len(done)} message(s) will be sent at the next delivery run, {moved} of them "
                          "re-addressed to the endpoint configured now (each row's history keeps the address it "
                          "had).", messages.SUCCESS)
        self._warn_superseded(request, queryset)
        unconfigured = queryset.exclude(state=OutboxState.DELIVERED).exclude(channel__in=list(peers())).count()
        if unconfigured:
            self.message_user(request, f"{unconfigured} message(s) left as they are: no endpoint is configured for "
                              "their channel now.", messages.WARNING)

    def _warn_superseded(self, request, queryset):
        superseded = queryset.exclude(state=OutboxState.DELIVERED).filter(report__status=ReportStatus.AMENDED).count()
        if superseded:
            self.message_user(request, f"{superseded} message(s) not sent again: their report was superseded by a "
                              "signed amendment, whose result replaces them.", messages.WARNING)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
