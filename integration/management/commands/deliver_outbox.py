"""manage.py deliver_outbox [--loop SECONDS]: send the due result messages (what the django-q2 schedule does)."""

import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Send due outbox rows (ORU^R01 over MLLP, FHIR bundles over REST) once, or every SECONDS with --loop."

    def add_arguments(self, parser):
        parser.add_argument("--loop", type=float, default=0, metavar="SECONDS",
                            help="keep running, one delivery run every SECONDS")

    def handle(self, *args, loop, **options):
        from integration.delivery import deliver_due

        while True:
            done = deliver_due()
            if any(done.values()) or not loop:
                self.stdout.write(", ".join(f"{k} {v}" for k, v in done.items()))
            if not loop:
                return
            time.sleep(loop)
