"""manage.py mllp_listen [--host H] [--port P] [--idle-timeout S] [--block-timeout S] [--max-connections N]
[--allow CIDR ...]: receive HL7 v2 orders (ORM^O01, OML^O21) over MLLP."""

import asyncio
import ipaddress

from pdl1site.conf import settings
from django.core.management.base import BaseCommand, CommandError

from analysis import argtypes


class Command(BaseCommand):
    help = "Listen for HL7 v2 orders over MLLP and answer each with an ACK or a NACK (docs/integration.md)."

    def add_arguments(self, parser):
        from integration.mllp import BLOCK_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS

        parser.add_argument("--host", default=settings.PDL1_INTEGRATION_MLLP_HOST)
        # Checked by the parser before the listener starts: a port outside 1-65535 (0 is one the system picks,
        # which no sender is configured for), an infinite or nan time limit.
        parser.add_argument("--port", type=argtypes.port, default=settings.PDL1_INTEGRATION_MLLP_PORT)
        parser.add_argument("--idle-timeout", type=argtypes.positive_float, default=IDLE_TIMEOUT,
                            help=f"close a connection that sends no message for this many seconds ({IDLE_TIMEOUT:g})")
        parser.add_argument("--block-timeout", type=argtypes.positive_float, default=BLOCK_TIMEOUT,
                            help="close a connection whose begun message does not end, or that does not take its "
                                 f"answer, within this many seconds ({BLOCK_TIMEOUT:g})")
        parser.add_argument("--max-connections", type=argtypes.positive_int, default=MAX_CONNECTIONS,
                            help=f"connections open at once; more are closed at once ({MAX_CONNECTIONS})")
        parser.add_argument("--allow", action="append", default=[], metavar="CIDR",
                            help="accept connections only from this network (an address or CIDR; repeat for "
                                 "more); without it, from anywhere")

    def handle(self, *args, host, port, idle_timeout, block_timeout, max_connections, allow, **options):
        from integration.mllp import Limits, serve

        try:
            networks = tuple(ipaddress.ip_network(a.strip(), strict=False) for a in allow)
        except ValueError as exc:
            raise CommandError(f"--allow: {exc}") from None
        limits = Limits(idle_timeout, block_timeout, max_connections, networks)
        where = ", ".join(map(str, networks)) or "anywhere"
        self.stdout.write(f"MLLP listener on {host}:{port}, connections from {where}, at most {max_connections} "
                          "at once (Ctrl-C stops it)")
        try:
            asyncio.run(serve(host, port, settings.PDL1_INTEGRATION_MAX_MESSAGE_BYTES, limits=limits))
        except KeyboardInterrupt:
            self.stdout.write("stopped")
