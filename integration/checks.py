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


@register()
def check_order_intake(app_configs, **kwargs):
    # Orders come in (both channels) once a department takes them. Without an assigning authority the HL7
    # listener took the first MR identifier in PID-3, whichever organisation issued it: another hospital's
    # number 555 filed the order under our patient 555.
    if settings.PDL1_INTEGRATION_ORDER_DEPARTMENT and not settings.PDL1_INTEGRATION_MRN_AUTHORITY:
        return [Error("PDL1_INTEGRATION_ORDER_DEPARTMENT accepts orders, but PDL1_INTEGRATION_MRN_AUTHORITY is not "
                      "set: an HL7 order's MRN would be taken from any issuing organisation",
                      hint="set it to the assigning authority (PID-3.4) of the hospital's MRNs, e.g. HOSP",
                      id="integration.E003")]
    return []
