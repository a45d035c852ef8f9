"""Case.placer_order of the cases filed before it existed (0011 left it blank), read from the accepted order
messages kept for each case (integration.InboundMessage): a case filed under the placer's number alone before
0011 found no case by it, and the same order with the laboratory's filler number made a second case.

The number is qualified as integration.orders.placer_key does it (HL7 ORC-2/OBR-2 EI.2, else EI.3; the FHIR
PLAC identifier's system), copied here: a migration keeps the rule of its day. The first message that gives a
case a placer number decides, and a number another case holds already stays with that case. A value that 0011-era
orders stored unqualified is qualified too. Nothing happens where the integration app is not installed."""

import hashlib
import json

from django.db import migrations

MAX_LENGTH = 64  # Case.placer_order
PLACER_TYPES = ("PLAC",)


def placer_key(number: str, namespace: str) -> str:
    if not namespace:
        return number
    key = f"{namespace}|{number}"
    if len(key) > MAX_LENGTH:
        key = f"#{hashlib.sha256(namespace.encode('utf-8')).hexdigest()[:16]}|{number}"
    return key


def _hl7_placer(raw: bytes) -> tuple[str, str]:
    """(number, key) of an HL7 order's ORC-2 (else OBR-2); ("", "") where it has none or an escape (not read
    here: such a number is left as it is)."""
    if raw[:3] != b"MSH" or len(raw) < 8:
        return "", ""
    text = raw.decode("utf-8", "replace").replace("\r\n", "\r").replace("\n", "\r")
    field_sep, component_sep, escape = text[3], text[4], text[6:7] or "\\"
    for name in ("ORC", "OBR"):
        for line in text.split("\r"):
            if not line.startswith(name + field_sep):
                continue
            fields = line.split(field_sep)
            placer = fields[2].split(text[5])[0] if len(fields) > 2 else ""  # its first repetition
            parts = [part.strip() for part in placer.split(component_sep)] + ["", "", ""]
            if not parts[0] or escape in placer:
                break
            return parts[0], placer_key(parts[0], parts[1] or parts[2])
    return "", ""


def _fhir_placer(raw: bytes) -> tuple[str, str]:
    try:
        data = json.loads(bytes(raw))
    except (ValueError, UnicodeDecodeError):
        return "", ""
    identifiers = data.get("identifier") if isinstance(data, dict) else None
    for identifier in identifiers if isinstance(identifiers, list) else []:
        codings = ((identifier.get("type") or {}).get("coding") or []) if isinstance(identifier, dict) else []
        value = (identifier.get("value") or "").strip() if isinstance(identifier, dict) else ""
        if value and any(isinstance(c, dict) and c.get("code") in PLACER_TYPES for c in codings):
            return value, placer_key(value, (identifier.get("system") or "").strip())
    return "", ""


def forwards(apps, schema_editor):
    try:
        InboundMessage = apps.get_model("integration", "InboundMessage")
    except LookupError:  # the integration app is optional in a host project
        return
    Case = apps.get_model("cases", "Case")
    held = set(Case.objects.exclude(placer_order="").values_list("placer_order", flat=True))
    done = set()
    messages = (InboundMessage.objects.filter(outcome="AA", case__isnull=False, duplicate_of__isnull=True)
                .order_by("received_at", "pk").values_list("case_id", "channel", "raw"))
    for case_id, channel, raw in messages.iterator():
        if case_id in done:
            continue
        number, key = (_fhir_placer if channel == "fhir" else _hl7_placer)(bytes(raw))
        if not number or len(key) > MAX_LENGTH:
            continue
        done.add(case_id)
        case = Case.objects.filter(pk=case_id).values("placer_order").first()
        if case is None or case["placer_order"] not in ("", number) or case["placer_order"] == key or key in held:
            continue
        held.discard(case["placer_order"])
        held.add(key)
        Case.objects.filter(pk=case_id).update(placer_order=key)


class Migration(migrations.Migration):

    dependencies = [
        ("cases", "0011_case_placer_order"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
