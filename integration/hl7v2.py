"""HL7 v2 with python-hl7: orders in (ORM^O01, OML^O21), their ACK/NACK, and results out (ORU^R01).

Mapping tables: docs/integration.md. Messages are text in the encoding MSH-18 names (UTF-8 when it
is empty or names UNICODE UTF-8; ASCII and 8859/1 also accepted); segments end with CR.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from dataclasses import dataclass

import hl7
from pdl1site.conf import settings

from integration import hl7text
from integration.orders import (OrderData, OrderError, PatientData, SEX_CODES, assay_of, check_text, given_names,
                                indication_of, placer_key, tidy)

ORDER_TYPES = {("ORM", "O01"), ("OML", "O21")}
ENCODINGS = {"": "utf-8", "UNICODE UTF-8": "utf-8", "ASCII": "ascii", "8859/1": "latin-1"}
LOINC_PDL1 = "85147-7"  # PD-L1 by clone 22C3 (cases.reports.LOINC_PDL1_22C3)
HL7_ERRORS = {"100": "Segment sequence error", "101": "Required field missing", "102": "Data type error",
              "103": "Table value not found", "200": "Unsupported message type", "201": "Unsupported event code",
              "203": "Unsupported version id", "204": "Unknown key identifier",
              "207": "Application internal error"}
# What a message may hold, checked before it is parsed: python-hl7 builds an object for every field,
# repetition and component, and reading PID-3 went through each repetition (1 MiB of empty ones held the
# listener for minutes). An order is a dozen segments; the longest standard segment has 50-odd fields.
MAX_SEGMENTS = 500
MAX_FIELDS = 250  # per segment
MAX_REPETITIONS = 100  # per field
SEGMENT_NAME = re.compile(r"[A-Z0-9]{3}")


@dataclass(frozen=True)
class Header:
    control_id: str
    sender: str  # MSH-3^MSH-4
    message_type: str  # e.g. ORM^O01


def decode(raw: bytes) -> tuple[hl7.Message, Header]:
    """Parse a message (raises OrderError with reject=True when it is not an acceptable HL7 v2 message)."""
    if b"\x00" in raw:  # never in HL7 v2 text, and PostgreSQL text cannot hold it
        raise OrderError("the message contains NUL bytes", location="MSH^1", code="102", reject=True)
    if raw[:3] != b"MSH" or len(raw) < 8:
        raise OrderError("not an HL7 v2 message: it must begin with an MSH segment", location="MSH^1",
                         code="100", reject=True)
    charset = charset_of(raw)
    if charset not in ENCODINGS:
        raise OrderError(f"character set {charset!r} (MSH-18) is not supported: use UNICODE UTF-8",
                         location="MSH^1^18", code="103", reject=True)
    try:
        text = raw.decode(ENCODINGS[charset])
    except UnicodeDecodeError as exc:
        raise OrderError(f"the message is not valid {ENCODINGS[charset]} (byte {exc.start})", location="MSH^1^18",
                         code="102", reject=True) from None
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    check_shape(text)
    try:
        message = hl7.parse(text)
        control_id = text_at(message, "MSH.F10").strip()
        header = Header(control_id, f"{text_at(message, 'MSH.F3')}^{text_at(message, 'MSH.F4')}",
                        f"{text_at(message, 'MSH.F9.R1.C1')}^{text_at(message, 'MSH.F9.R1.C2')}")
    except OrderError:
        raise
    except Exception as exc:  # python-hl7 raises plain exceptions on malformed structure
        raise OrderError(f"the message cannot be parsed: {exc}", location="MSH^1", code="100", reject=True) from None
    if not control_id:
        raise OrderError("MSH-10 (message control id) is empty", location="MSH^1^10", code="101", reject=True)
    return message, header


def _msh_line(raw: bytes) -> bytes:
    return raw.split(b"\r", 1)[0].split(b"\n", 1)[0]


def charset_of(raw: bytes) -> str:
    """MSH-18 (its first repetition), upper-cased: a key of ENCODINGS when it names one accepted here. Read
    from the bytes: the delimiters are ASCII, and no byte of a UTF-8 character is, so the fields before it
    split the same in every encoding accepted."""
    fields = _msh_line(raw).split(raw[3:4])
    if len(fields) <= 17:
        return ""
    repetition = fields[1][1:2] or b"~"
    return fields[17].split(repetition)[0].decode("latin-1").strip().upper()


def check_shape(text: str):
    """Refuse (AR) a message with more segments, fields in a segment or repetitions in a field than an
    order has (MAX_SEGMENTS, MAX_FIELDS, MAX_REPETITIONS), before python-hl7 builds it."""
    if len(text) < 4:  # no field separator: python-hl7 refuses it
        return
    segments = text.split("\r")
    if len(segments) > MAX_SEGMENTS:
        raise OrderError(f"the message holds {len(segments)} segments: at most {MAX_SEGMENTS} are accepted",
                         location="MSH^1", code="207", reject=True)
    field_sep = text[3]
    repetition = text[4:].split(field_sep, 1)[0][1:2] or "~"
    seen = {}
    for segment in segments:
        # The sender's name goes into ERR-2 only when it is one ("Z|9" would shift the ERR fields after it)
        name = segment[:3] if SEGMENT_NAME.fullmatch(segment[:3]) else "SEG"
        seen[name] = seen.get(name, 0) + 1
        fields = segment.split(field_sep)
        if name == "MSH":  # MSH-1 is the field separator itself: fields[1] is MSH-2, the delimiters ("~" too)
            numbered = [(index + 1, field) for index, field in enumerate(fields) if index >= 2]
            count = len(fields)
        else:
            numbered, count = list(enumerate(fields))[1:], len(fields) - 1
        if count > MAX_FIELDS:
            raise OrderError(f"a {name} segment holds {count} fields: at most {MAX_FIELDS} are accepted",
                             location=f"{name}^{seen[name]}", code="207", reject=True)
        for number, field in numbered:
            if field.count(repetition) >= MAX_REPETITIONS:
                raise OrderError(f"{name}-{number} holds {field.count(repetition) + 1} repetitions: at most "
                                 f"{MAX_REPETITIONS} are accepted", location=f"{name}^{seen[name]}^{number}",
                                 code="207", reject=True)


def check_order_type(header: Header):
    event = tuple(header.message_type.split("^"))
    if event not in ORDER_TYPES:
        raise OrderError(f"message type {header.message_type} is not accepted here: send ORM^O01 or OML^O21",
                         location="MSH^1^9", code="200", reject=True)


def value_at(message, path: str) -> str:
    """The value at an accessor path (e.g. "PID.F3.R2.C4.S1"), unescaped; "" where the message has none."""
    try:
        return str(message[path])
    except (IndexError, KeyError):
        return ""


def text_at(message, path: str) -> str:
    """What an order says at an accessor path: unescaped strictly (hl7text), refused (AE) where an escape
    cannot be read or the value holds a control character (a \\X00\\ escape is a NUL once unescaped,
    which the check on the raw bytes cannot see)."""
    location, name = where(path)
    charset = ENCODINGS.get(hl7text.leaf(message, "MSH.F18").strip().upper(), "utf-8")
    try:
        text = hl7text.unescape(hl7text.leaf(message, path), separators=message.separators, esc=message.esc,
                                charset=charset)
    except ValueError as exc:
        raise OrderError(f"{name}: {exc}", location=location, code="102") from None
    return check_text(text, location, name)


def where(path: str) -> tuple[str, str]:
    """(HL7 ERL, human name) of an accessor path: "PID.F5.R1.C1" is ("PID^1^5^1^1", "PID-5.1")."""
    key = hl7.Accessor.parse_key(path)
    field = key.field_num or 1
    erl = [key.segment, key.segment_num or 1, field] + [n for n in (key.repeat_num, key.component_num,
                                                                   key.subcomponent_num) if n]
    return "^".join(map(str, erl)), f"{key.segment}-{field}" + "".join(
        f".{n}" for n in (key.component_num, key.subcomponent_num) if n)


def _segment(message, name: str, required: bool = True):
    try:
        return message.segment(name)
    except KeyError:
        if required:
            raise OrderError(f"the {name} segment is missing", location=f"{name}^1", code="100") from None
        return None


def _mrn(message) -> str:
    """PID-3's MRN: the repetition whose assigning authority (namespace or universal id) is the configured
    one, or, without one configured (the system check integration.E003 asks for it), the repetition whose
    identifier type is MR, refused (AR) when MR repetitions of different authorities leave it open whose it is."""
    authority = settings.PDL1_INTEGRATION_MRN_AUTHORITY
    repetitions = len(_segment(message, "PID")(3))
    found = []  # (value, its authority's names)
    for r in range(1, repetitions + 1):
        value = text_at(message, f"PID.F3.R{r}.C1").strip()
        if not value:
            continue
        names = (text_at(message, f"PID.F3.R{r}.C4.S1"), text_at(message, f"PID.F3.R{r}.C4.S2"))
        if authority and authority in names:
            return value
        if not authority and text_at(message, f"PID.F3.R{r}.C5") == "MR":
            found.append((value, names))
    if len({names for _, names in found}) > 1:
        issuers = ", ".join("^".join(n for n in names if n) or "(none)" for _, names in found)
        raise OrderError(f"PID-3 holds MRNs of more than one assigning authority ({issuers}) and none is configured: "
                         "set PDL1_INTEGRATION_MRN_AUTHORITY to the hospital's", location="PID^1^3", code="207",
                         reject=True)
    if found:
        return found[0][0]
    wanted = f"assigning authority {authority}" if authority else "identifier type MR"
    raise OrderError(f"PID-3 has no patient identifier with {wanted}", location="PID^1^3", code="101")


def _one(message, *paths: str, location: str, what: str) -> str:
    """The value the given fields agree on ('' when none is given); different values are an error."""
    values = {p: text_at(message, p).strip() for p in paths if has_segment(message, p.split(".")[0])}
    given = {v for v in values.values() if v}
    if len(given) > 1:
        raise OrderError(f"{what} differ: " + ", ".join(f"{p} {v!r}" for p, v in values.items() if v),
                         location=location, code="207")
    return given.pop() if given else ""


def has_segment(message, segment: str) -> bool:
    return _segment(message, segment, required=False) is not None


def _cwe_text(message, path: str) -> str:
    return (text_at(message, f"{path}.C2") or text_at(message, f"{path}.C1")).strip()


def read_order(message) -> OrderData:
    """An ORM^O01 or OML^O21 as OrderData (raises OrderError naming the field that is wrong)."""
    for name in ("ORC", "OBR"):
        _segment(message, name)
        if len(message.segments(name)) > 1:  # only the first was read, and AA said all were filed
            raise OrderError(f"the message holds {len(message.segments(name))} {name} segments: send one order "
                             "per message", location=f"{name}^2", code="100", reject=True)
    control = text_at(message, "ORC.F1").strip()
    if control not in ("NW", "XO"):  # SC (a status change) orders nothing
        raise OrderError(f"order control {control or '(empty)'} (ORC-1) is not accepted: send NW (new) or XO "
                         "(change); cancellations and status changes are made by the laboratory", location="ORC^1^1",
                         code="103", reject=True)
    filler = _one(message, "ORC.F3.R1.C1", "OBR.F3.R1.C1", location="OBR^1^3", what="filler order numbers")
    placer = _one(message, "ORC.F2.R1.C1", "OBR.F2.R1.C1", location="OBR^1^2", what="placer order numbers")
    # The placer's number is the ordering system's: qualified by its namespace (EI.2, else EI.3)
    namespace = (_one(message, "ORC.F2.R1.C2", "OBR.F2.R1.C2", location="OBR^1^2", what="placer namespaces")
                 or _one(message, "ORC.F2.R1.C3", "OBR.F2.R1.C3", location="OBR^1^2", what="placer namespaces"))
    accession = filler or placer
    if not accession:
        raise OrderError("no accession: give the filler order number (ORC-3/OBR-3) or the placer order number "
                         "(ORC-2/OBR-2)", location="ORC^1^3", code="101")
    patient = PatientData(
        mrn=_mrn(message), family_name=tidy(text_at(message, "PID.F5.R1.C1")),
        given_name=given_names(text_at(message, "PID.F5.R1.C2"), text_at(message, "PID.F5.R1.C3")),
        birth_date=_birth_date(text_at(message, "PID.F7.R1.C1")))
    sex = text_at(message, "PID.F8").strip().upper()
    if sex:
        if sex not in SEX_CODES:
            raise OrderError(f"administrative sex {sex!r} (PID-8) is not in HL7 table 0001", location="PID^1^8",
                             code="103")
        patient.sex = SEX_CODES[sex]
    specimen = ""
    if has_segment(message, "SPM"):
        specimen = ", ".join(t for t in (_cwe_text(message, "SPM.F4.R1"), _cwe_text(message, "SPM.F8.R1")) if t)
    if not specimen:
        # OBR-15 (SPS): its first component is a CWE in subcomponents (code&text&system)
        specimen = (text_at(message, "OBR.F15.R1.C1.S2") or text_at(message, "OBR.F15.R1.C1.S1")).strip() if text_at(message, "OBR.F15") else ""
    dg1 = _cwe_text(message, "DG1.F3.R1") if has_segment(message, "DG1") else ""
    indication = indication_of(text_at(message, "OBR.F13").strip(), dg1,
                               location="OBR^1^13" if text_at(message, "OBR.F13").strip() else "DG1^1^3")
    clone = assay_of(*(text_at(message, f"OBR.F4.R1.C{c}") for c in (1, 2, 4, 5)), location="OBR^1^4")
    return OrderData(patient=patient, accession=accession, placer_order=placer_key(placer, namespace) if placer else "",
                     placer_number=placer, specimen=specimen[:200], indication=indication, assay_clone=clone,
                     change=control == "XO")


def _birth_date(text: str):
    try:
        return hl7text.parse_date(text)
    except ValueError as exc:
        raise OrderError(f"{text!r} is not a date: {exc}",
                         location="PID^1^7", code="102") from None


# --- answers -------------------------------------------------------------------------------------

def _escape(text: str) -> str:
    return (text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
            .replace("~", "\\R\\").replace("\r", " ").replace("\n", " "))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S+0000")


def answer(raw_header: dict, code: str, control_id: str, ack_id: str, error: OrderError | None = None) -> bytes:
    """ACK (AA) or NACK (AE/AR, with MSA-3 and an ERR segment saying what is wrong) for a message.
    `raw_header`: header_fields() of the message (empty for one that could not be read); `control_id` as the
    message wrote it. What is copied from the message is written again with our delimiters."""
    h = raw_header
    charset = h.get("charset") or "UNICODE UTF-8"  # the message's: its values are copied into the answer
    ours = (lambda text: hl7text.reencode(text, h.get("delimiters", hl7text.OURS), ENCODINGS[charset]))
    header = msh({3: settings.PDL1_INTEGRATION_APPLICATION, 4: settings.PDL1_INTEGRATION_FACILITY,
                  5: ours(h.get("app", "")), 6: ours(h.get("facility", "")), 7: _now(),
                  9: f"ACK^{ours(h.get('event', ''))}^ACK", 10: ack_id, 11: ours(h.get("processing", "")) or "P",
                  12: ours(h.get("version", "")) or "2.5.1", 18: charset})
    sent_id = ours(control_id)
    # MSA-3: the first 80 characters, cut before escaping (never half an escape sequence)
    segments = [header, f"MSA|{code}|{sent_id}" + (f"|{_escape(error.text[:80])}" if error else "")]
    if error:
        name = HL7_ERRORS.get(error.code, "Application error")
        location = "^".join(_escape(part) for part in error.location.split("^"))  # ERL components
        segments.append(f"ERR||{location}|{error.code}^{name}^HL70357|E||||{_escape(error.text)}")
    # Our own texts are ASCII but may quote what a refused message said: what the charset cannot write is "?"
    return "\r".join(segments).encode(ENCODINGS[charset], "replace") + b"\r"


def header_fields(raw: bytes) -> dict:
    """The fields an answer copies from a message's MSH, as written there (with the message's delimiters,
    also given), read leniently (the message may be broken), in the encoding MSH-18 names (UTF-8 when it
    names none accepted here); "charset": that MSH-18, empty when not accepted (the answer is UTF-8 then)."""
    if raw[:3] != b"MSH" or len(raw) < 8:
        return {}
    sep = raw[3:4].decode("latin-1")
    charset = charset_of(raw)
    charset = charset if charset in ENCODINGS else ""
    fields = _msh_line(raw).replace(b"\x00", b"").decode(ENCODINGS[charset], "replace").split(sep)
    get = (lambda i: fields[i - 1] if len(fields) >= i else "")
    delimiters = hl7text.delimiters_of(get(2), sep)
    component = get(9).split(delimiters["S"])
    return {"app": get(3), "facility": get(4), "control_id": get(10), "event": component[1] if len(component) > 1 else "",
            "processing": get(11), "version": get(12), "delimiters": delimiters, "charset": charset}


def same_message(first: bytes, again: bytes) -> bool:
    """Whether two messages differ at most in MSH-7 (the time the engine sent it): an engine that stamps each
    resend anew sends the same message, which was refused as a reuse of its control id."""
    return hl7text.without_msh_7(first) == hl7text.without_msh_7(again)


# --- results out ---------------------------------------------------------------------------------

def segment(name: str, fields: dict[int, str]) -> str:
    """A segment from {field number: already escaped value}; the fields between are empty."""
    return "|".join([name] + [fields.get(i, "") for i in range(1, max(fields) + 1)])


def msh(fields: dict[int, str]) -> str:
    """The MSH segment: MSH-1 is the field separator itself, MSH-2 the encoding characters."""
    return "MSH|^~\\&|" + "|".join(fields.get(i, "") for i in range(3, max(fields) + 1))


def oru_r01(report, pdf: bytes, fhir: bytes, message_id: str) -> bytes:
    """ORU^R01 of a signed report version, from its stored documents: OBX 1 TPS (NM, %), 2 its category (ST),
    3 CPS when measured, then the conclusion (TX) and the signed PDF (ED, base64). Result status F for a
    first signing, C for an amendment (a correction of a result already sent)."""
    case, patient, scores = report.case, report.case.patient, report.scores
    status = "C" if report.supersedes_id else "F"
    when = report.signed_at.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%S+0000")
    signer = (report.signed_by.get_full_name() or report.signed_by.get_username()) if report.signed_by else ""
    clone = _escape(case.assay_clone)
    if case.assay_clone == "22C3":
        service, tps_code = f"{LOINC_PDL1}^PD-L1 by clone 22C3^LN", \
            f"{LOINC_PDL1}^PD-L1 by clone 22C3 [Interpretation] in Tissue by Immune stain^LN"
    else:
        service, tps_code = f"PDL1-IHC-{clone}^PD-L1 IHC ({clone})^L", f"PDL1-TPS-{clone}^PD-L1 TPS ({clone})^L"
    sex = {"female": "F", "male": "M", "other": "O"}.get(patient.sex, "U")
    segments = [
        msh({3: settings.PDL1_INTEGRATION_APPLICATION, 4: settings.PDL1_INTEGRATION_FACILITY,
             5: settings.PDL1_INTEGRATION_RESULTS_APPLICATION, 6: settings.PDL1_INTEGRATION_RESULTS_FACILITY,
             7: _now(), 9: "ORU^R01^ORU_R01", 10: message_id, 11: "P", 12: "2.5.1", 18: "UNICODE UTF-8"}),
        segment("PID", {1: "1", 3: f"{_escape(patient.mrn)}^^^{_escape(settings.PDL1_INTEGRATION_MRN_AUTHORITY)}^MR",
                        5: f"{_escape(patient.family_name)}^{_escape(patient.given_name)}",
                        7: f"{patient.birth_date:%Y%m%d}", 8: sex}),
        segment("ORC", {1: "RE", 3: _escape(case.accession), 5: "CM"}),
        segment("OBR", {1: "1", 3: _escape(case.accession), 4: service, 7: when, 22: when, 24: "SP", 25: status,
                        32: _escape(signer)}),
    ]
    values = []  # (type, code, value, units)
    tps, cps = scores["tps"], scores["cps"]
    if scores["adequacy"]["adequate"] and tps.get("value") is not None:
        values.append(("NM", tps_code, str(tps["value"]), "%^percent^UCUM"))
        values.append(("ST", "PDL1-TPS-CAT^PD-L1 TPS category^L", _escape(tps["category"] or tps["status"]), ""))
    if scores["adequacy"]["adequate"] and cps.get("value") is not None:
        values.append(("NM", f"PDL1-CPS-{clone}^PD-L1 CPS ({clone})^L", str(cps["value"]), "{score}^score^UCUM"))
    values.append(("TX", "PDL1-CONCL^PD-L1 report conclusion^L", _escape(_conclusion(report, fhir)), ""))
    values.append(("ED", "PDF^Signed report PDF^L", "^AP^PDF^Base64^" + base64.b64encode(pdf).decode("ascii"), ""))
    segments += [segment("OBX", {1: str(i), 2: kind, 3: code, 5: value, 6: units, 11: status})
                 for i, (kind, code, value, units) in enumerate(values, 1)]
    return "\r".join(segments).encode("utf-8") + b"\r"


def _conclusion(report, fhir: bytes) -> str:
    """The conclusion the stored FHIR bundle states (one text for both channels), with the amendment's reason."""
    text = json.loads(fhir)["entry"][0]["resource"].get("conclusion", "")
    if report.supersedes_id and report.amendment_reason:
        text += f" Amended: {report.amendment_reason}"
    return text
