"""manage.py readdress_outbox MESSAGE_ID... --user NAME: the admin action "Re-address to the current
endpoint and send again", for a hospital engineer at the server after correcting the peer's address."""

from auditlog.context import set_actor
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Point result messages that are not delivered at the endpoint configured now and make them due "
            "(delivered rows and the signed payload are never changed).")

    def add_arguments(self, parser):
        parser.add_argument("message_ids", nargs="+", metavar="MESSAGE_ID", help="outbox message id, e.g. PDL1R12F")
        parser.add_argument("--user", required=True,
                            help="user name recorded in the audit trail as the one who re-addressed them")

    def handle(self, *args, message_ids, user, **options):
        from integration.delivery import readdress
        from integration.models import OutboxMessage

        actor = get_user_model().objects.filter(username=user).first()
        if actor is None:
            raise CommandError(f"no user named {user!r}")
        rows = OutboxMessage.objects.filter(message_id__in=message_ids)
        unknown = sorted(set(message_ids) - set(rows.values_list("message_id", flat=True)))
        if unknown:  # checked before anything changes: a typo must not re-address half of a list
            raise CommandError(f"no outbox message {', '.join(unknown)}")
        with set_actor(actor):
            done = readdress(rows)
        for row, old in done:
            where = f"{old} -> {row.destination}" if old != row.destination else f"{old} (already the current one)"
            self.stdout.write(f"{row.message_id}: {where}, due now")
        for message_id in sorted(set(message_ids) - {row.message_id for row, _ in done}):
            self.stdout.write(f"{message_id}: left as it is (delivered, superseded by an amendment, being sent now, "
                              "or no endpoint configured for its channel)")
