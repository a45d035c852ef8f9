"""System checks (manage.py check, and every command that runs them): a mistyped peer stops start-up
instead of filling the outbox with rows that can never be delivered."""

from urllib.parse import urlsplit

from pdl1site.conf import settings
from django.core.checks import Error, register


@register()
def check_peers(app_configs, **kwargs):
    errors = []
    peer = settings.PDL1_INTEGRATION_RESULTS_MLLP_PEER
    if peer:
        host, _, port = peer.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            errors.append(Error(f"PDL1_INTEGRATION_RESULTS_MLLP_PEER={peer!r} is not host:port",
                                hint="e.g. his-engine.hospital.example:6661", id="integration.E001"))
    base = settings.PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL
    if base:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append(Error(f"PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL={base!r} is not an http(s) URL",
                                hint="e.g. https://fhir.hospital.example/r4", id="integration.E002"))
    return errors
