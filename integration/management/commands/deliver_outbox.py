"""manage.py deliver_outbox [--loop SECONDS]: send the due result messages (what the django-q2 schedule does)."""

import argparse
import math
import time

from django.core.management.base import BaseCommand, CommandError


def seconds(text: str) -> float:
    """--loop's value: checked before anything is sent. A negative, nan or infinite wait used to be found
    by time.sleep only after the first run had sent the due messages."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds, 0 or more (0: run once)")
    return value


class Command(BaseCommand):
    help = "Send due outbox rows (ORU^R01 over MLLP, FHIR bundles over REST) once, or every SECONDS with --loop."

    def add_arguments(self, parser):
        parser.add_argument("--loop", type=seconds, default=0, metavar="SECONDS",
                            help="keep running, one delivery run every SECONDS (0: once)")

    def handle(self, *args, loop, **options):
        from integration.delivery import deliver_due

        try:  # call_command(loop=...) passes the value past argparse: the same check
            loop = seconds(str(loop))
        except argparse.ArgumentTypeError as exc:
            raise CommandError(f"--loop {exc}") from None

        while True:
            done = deliver_due()
            if any(done.values()) or not loop:
                self.stdout.write(", ".join(f"{k} {v}" for k, v in done.items()))
            if not loop:
                return
            time.sleep(loop)
