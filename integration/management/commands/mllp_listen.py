"""manage.py mllp_listen [--host H] [--port P]: receive HL7 v2 orders (ORM^O01, OML^O21) over MLLP."""

import asyncio

from pdl1site.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Listen for HL7 v2 orders over MLLP and answer each with an ACK or a NACK (docs/integration.md)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.PDL1_INTEGRATION_MLLP_HOST)
        parser.add_argument("--port", type=int, default=settings.PDL1_INTEGRATION_MLLP_PORT)

    def handle(self, *args, host, port, **options):
        from integration.mllp import serve

        self.stdout.write(f"MLLP listener on {host}:{port} (Ctrl-C stops it)")
        try:
            asyncio.run(serve(host, port, settings.PDL1_INTEGRATION_MAX_MESSAGE_BYTES))
        except KeyboardInterrupt:
            self.stdout.write("stopped")
