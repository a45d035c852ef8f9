"""Orders in: the data of one order, however it arrived (HL7 v2 ORM/OML or FHIR ServiceRequest), and the
service that files it as a Patient and a Case.

do_file_order runs inside the caller's transaction: the caller (integration.inbound) stores the
message and its answer in the same transaction, and rolls the changes back when the order is refused.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

from pdl1site.conf import settings

from cases.choices import AssayClone, Indication, Sex
from cases.models import Case, Department, Patient, RecordLocked

# LOINC 85147-7 is PD-L1 by clone 22C3 (cases.reports.LOINC_PDL1_22C3): an order for it names its clone.
LOINC_CLONES = {"85147-7": AssayClone.C22C3}


class OrderError(Exception):
    """An order that cannot be filed: nothing was changed. `location` says where (HL7 ERL: segment^seq^field),
    `code` is the HL7 table 0357 error code, `reject` an AR (the message itself is not acceptable) rather than AE."""

    def __init__(self, text: str, *, location: str = "", code: str = "207", reject: bool = False):
        # The text is kept (PostgreSQL text cannot hold NUL) and sent back: no control character from the input
        text = "".join(f"\\x{ord(c):02x}" if _is_control(c) else c for c in text)
        super().__init__(text)
        self.text, self.location, self.code, self.reject = text, location, code, reject


@dataclass
class PatientData:
    mrn: str
    family_name: str = ""
    given_name: str = ""
    birth_date: datetime.date | None = None
    sex: str = ""  # a cases.choices.Sex value, or "" when not given


@dataclass
class OrderData:
    patient: PatientData
    accession: str  # the filler order number, else the placer order number
    placer_order: str = ""  # the placer order number as stored (placer_key: qualified by its namespace), when given
    placer_number: str = ""  # the placer order number as sent (HL7 EI.1, the FHIR identifier's value)
    specimen: str = ""
    indication: str = ""  # an Indication value, or "" when not given
    assay_clone: str = ""  # an AssayClone value, or "" when not given
    change: bool = False  # a change to a known case (HL7 XO), never a new one
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FiledOrder:
    patient: Patient
    case: Case
    created_patient: bool
    created_case: bool


def _is_control(char: str) -> bool:
    return char != "\t" and unicodedata.category(char) == "Cc"


def check_text(text: str, location: str, name: str = "") -> str:
    """`text`, unless it holds a control character (tab aside): none belongs in a name, an identifier or a
    specimen, and PostgreSQL text cannot hold NUL (an insert would fail instead of the order being refused)."""
    bad = next((c for c in text if _is_control(c)), None)
    if bad is not None:
        raise OrderError(f"{name or location} holds the control character U+{ord(bad):04X}: send printable text only",
                         location=location, code="102")
    return text


# --- vocabularies --------------------------------------------------------------------------------

SEX_CODES = {"F": Sex.FEMALE, "M": Sex.MALE, "O": Sex.OTHER, "A": Sex.OTHER, "U": Sex.UNKNOWN, "N": Sex.UNKNOWN,
             "FEMALE": Sex.FEMALE, "MALE": Sex.MALE, "OTHER": Sex.OTHER, "UNKNOWN": Sex.UNKNOWN}


def indication_of(*texts: str, location: str) -> str:
    """The Indication whose value or label is one of `texts` (case-insensitive); "" when none is given."""
    given = [t.strip() for t in texts if t and t.strip()]
    if not given:
        return ""
    for text in given:
        for choice in Indication:
            if text.lower() in (choice.value.lower(), choice.label.lower()):
                return choice.value
    raise OrderError(f"indication {given[0]!r} is not one the platform knows: send one of "
                     + ", ".join(Indication.values), location=location, code="103")


def clones_named(text: str) -> list[str]:
    """The AssayClone values a test code or text names (LOINC 85147-7, or a clone's name in it)."""
    if not text:
        return []
    if text.strip() in LOINC_CLONES:
        return [LOINC_CLONES[text.strip()]]
    upper = text.upper()
    return [clone.value for clone in (AssayClone.C22C3, AssayClone.SP263, AssayClone.SP142, AssayClone.C28_8)
            if clone.value.upper() in upper]


def clone_of(*texts: str, location: str) -> str:
    """The one AssayClone the test's codes and texts name; "" when none. Codes and texts naming different clones
    are refused: the clone decides the report's cut-offs, and which one was filed depended on the order in which
    a channel read them (HL7 the code first, FHIR the text)."""
    named = {text.strip(): clones_named(text) for text in texts if clones_named(text)}
    clones = {clone for found in named.values() for clone in found}
    if len(clones) > 1:
        raise OrderError("the ordered test names different clones (" + ", ".join(
            f"{text[:40]!r}: {' and '.join(found)}" for text, found in named.items()) + "): order one clone, the "
            "clone decides the report's cut-offs", location=location, code="207")
    return clones.pop() if clones else ""


def _names_pdl1(text: str) -> bool:
    letters = "".join(c for c in text.upper() if c.isalnum())
    return any(name in letters for name in ("PDL1", "CD274", "B7H1"))  # the protein, its gene, its old name


def assay_of(*texts: str, location: str) -> str:
    """The AssayClone an order's test code or text names ("" when it names PD-L1 but no clone). An order for
    another test (HER2, say) is refused: filed as a PD-L1 case with clone "other", it would be stained and
    reported as PD-L1."""
    clone = clone_of(*texts, location=location)
    if clone or any(_names_pdl1(t) for t in texts if t):
        return clone
    given = " / ".join(t.strip() for t in texts if t and t.strip())
    if not given:
        raise OrderError("no test is ordered: order PD-L1 (LOINC 85147-7, or a code or text that names PD-L1)",
                         location=location, code="101")
    raise OrderError(f"the ordered test {given[:80]!r} is not PD-L1: this platform reports PD-L1 only (LOINC "
                     "85147-7, or a code or text that names PD-L1 or its clone)", location=location, code="103")


def parse_date(text: str, location: str) -> datetime.date | None:
    """A FHIR date (YYYY-MM-DD, the whole of it: a year or a month alone is no birth date); None when empty."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):  # fromisoformat alone also takes 19600517, 1960-W20-1
            return datetime.date.fromisoformat(text)
    except ValueError:
        pass
    raise OrderError(f"{text!r} is not a date (YYYY-MM-DD)", location=location, code="102")


# --- filing ----------------------------------------------------------------------------------------

def order_department() -> Department:
    code = settings.PDL1_INTEGRATION_ORDER_DEPARTMENT
    department = Department.objects.filter(code=code).first() if code else None
    if department is None:
        raise OrderError("this platform is not configured to accept orders (PDL1_INTEGRATION_ORDER_DEPARTMENT "
                         f"{'is not set' if not code else f'names no department: {code!r}'})", reject=True)
    return department


def _update(instance, values: dict, what: str, record: str, locations: dict):
    from django.core.exceptions import ValidationError

    changed = [name for name, value in values.items()
               if value not in ("", None) and not _same(value, getattr(instance, name))]
    for name in changed:
        setattr(instance, name, values[name])
    if changed:
        try:
            instance.full_clean(exclude=["department", "patient", "clinicians", "assigned_to", "created_by"])
            instance.save()
        except ValidationError as exc:  # a signed report's lock names no field: the refusal points at a changed one
            raise refused_values(exc, record, locations, changed) from None
        except RecordLocked as exc:
            raise OrderError(f"{what}: {exc}", location=locations[FIELD_LOCATIONS[changed[0]]]) from None
    return changed


_SPACES = re.compile(r"[^\S\x00-\x08\x0a-\x1f\x7f-\x9f]+")


def tidy(text: str) -> str:
    """A name as filed: composed Unicode, single spaces. The same normalisation decides whether an order changes
    a stored value (`_same`, which also ignores case), so "DOE^JANE" or a padded field is no change: a rewrite of
    a patient stated by a signed report refused the order, new cases included."""
    # Runs of spaces (no control character: check_text refuses those inside a value) become one space
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text).strip())


def given_names(*names: str) -> str:
    """The given name as filed from either channel: all given names, in order (HL7 PID-5.2 and PID-5.3, the
    second and further given names; FHIR name.given[]), else one patient flips between "Ada" and "Ada M"."""
    return tidy(" ".join(name for name in names if name))


def _same(given, stored) -> bool:
    if isinstance(given, str) and isinstance(stored, str):
        return tidy(given).casefold() == tidy(stored).casefold()
    return given == stored


def adds_given_names(given: str, stored: str) -> bool:
    """Whether `given` is the stored given name with further names after it ("Jane" -> "Jane Marie"), compared
    normalised: HL7 orders file PID-5.3 with PID-5.2, so a patient registered "Jane" (on the page, or by an
    HL7 order before) is sent "Jane Marie" by the same HIS. That is no correction of the patient's identity."""
    given_words, stored_words = tidy(given).casefold().split(), tidy(stored).casefold().split()
    return bool(stored_words) and len(given_words) > len(stored_words) \
        and given_words[:len(stored_words)] == stored_words


def identity_changes(patient: Patient, data: PatientData) -> list[str]:
    """The identity fields of `patient` that the order would change (a field the order leaves out changes
    nothing). An "unknown" sex is no news; a given name the record lacks is a change (names are the identity)."""
    changed = [name for name in ("family_name", "given_name")
               if getattr(data, name) and not _same(getattr(data, name), getattr(patient, name))]
    if "given_name" in changed and (adds_given_names(data.given_name, patient.given_name)
                                    or adds_given_names(patient.given_name, data.given_name)):
        changed.remove("given_name")  # further given names added or left out: the same name
    if data.sex not in ("", Sex.UNKNOWN) and data.sex != patient.sex:
        changed.append("sex")
    return changed


def check_same_patient(patient: Patient, data: PatientData, locations: dict):
    """An order for a known MRN must describe that patient. It may correct one thing at a time (the family
    name, the given name or the sex), and only with the patient's birth date: another birth date, two things
    changed, or a change without the birth date is more likely a wrong MRN than a correction, and filing it
    would rename someone else's record (and put the case under them)."""
    mrn_question = ("is the MRN right? (a correction of the patient's identity changes one of family name, given "
                    "name and sex, and gives the birth date; other corrections are made by the laboratory)")
    if data.birth_date and data.birth_date != patient.birth_date:
        raise OrderError(f"the birth date differs from that of patient {patient.mrn} on record: {mrn_question}",
                         location=locations["birth_date"], code="207")
    changed = identity_changes(patient, data)
    if not changed:
        return
    words = " and ".join(name.replace("_", " ") for name in changed)
    if not data.birth_date:
        raise OrderError(f"the order changes the {words} of patient {patient.mrn} on record but gives no birth "
                         f"date: {mrn_question}", location=locations["birth_date"], code="101")
    # A sex the record does not know is filled in, not corrected: it does not count as a second change (two
    # corrections always include a name)
    corrections = [name for name in changed if name != "sex" or patient.sex not in ("", Sex.UNKNOWN)]
    if len(corrections) > 1:
        raise OrderError(f"the {words} differ from those of patient {patient.mrn} on record: {mrn_question}",
                         location=locations["name"], code="207")


HL7_LOCATIONS = {"mrn": "PID^1^3", "name": "PID^1^5", "birth_date": "PID^1^7", "sex": "PID^1^8",
                 "accession": "ORC^1^3", "placer": "ORC^1^2", "control": "ORC^1^1", "order": "ORC^1",
                 "specimen": "OBR^1^15", "indication": "OBR^1^13", "assay_clone": "OBR^1^4"}
FHIR_LOCATIONS = {"mrn": "ServiceRequest.subject", "name": "Patient.name", "birth_date": "Patient.birthDate",
                  "sex": "Patient.gender", "accession": "ServiceRequest.identifier",
                  "placer": "ServiceRequest.identifier", "control": "ServiceRequest.intent", "order": "ServiceRequest",
                  "specimen": "ServiceRequest.specimen", "indication": "ServiceRequest.reasonCode",
                  "assay_clone": "ServiceRequest.code"}
# Where a refusal of a Patient's or a Case's field points (refused_values): the order field it is filed from
FIELD_LOCATIONS = {"mrn": "mrn", "family_name": "name", "given_name": "name", "birth_date": "birth_date",
                   "sex": "sex", "patient": "mrn", "accession": "accession", "placer_order": "placer",
                   "specimen": "specimen", "indication": "indication", "assay_clone": "assay_clone"}


def refused_values(exc, record: str, locations: dict, changed: list[str] = ()) -> OrderError:
    """The ValidationError of a Patient or Case (`record`) that the order would leave invalid (full_clean) as
    the OrderError pointing at the order field its first error is about; one about the whole record (a signed
    report states it) points, for a patient, at the first of the `changed` fields (PID-5 for a name), and for
    a case at the order (ORC). Code 207: the values were well-formed, the platform refuses them (every such
    refusal was a "102 Data type error" at PID-3)."""
    errors = exc.message_dict
    field = next((name for name in errors if name in FIELD_LOCATIONS), None)
    if field is None and record == "patient":  # the case's fields come from the whole order: ORC
        field = next((name for name in changed if name in FIELD_LOCATIONS), None)
    key = FIELD_LOCATIONS[field] if field else "mrn" if record == "patient" else "order"
    return OrderError("; ".join((f"{k}: " if k != "__all__" else "") + " ".join(v) for k, v in errors.items()),
                      location=locations[key], code="207")


def placer_key(number: str, namespace: str) -> str:
    """The placer order number as stored on a case: qualified by the ordering system that issued it (HL7 EI.2,
    else EI.3; the FHIR identifier's system), "NS|12345", or the number alone when the order names none.
    Two ordering systems may use the same numbers. A namespace too long for the field is named by a digest."""
    if not namespace:
        return number
    key = f"{namespace}|{number}"
    if len(key) > Case._meta.get_field("placer_order").max_length:
        key = f"#{hashlib.sha256(namespace.encode('utf-8')).hexdigest()[:16]}|{number}"
    return key


def find_case(order: OrderData, locations: dict) -> Case | None:
    """The order's case, by accession or by placer order number: an order sent with the placer's number alone
    (filed under it) and again with the laboratory's filler number is one case, not two.

    A filler order number finds a case by the placer number only when that case was filed under it (it has
    no filler number yet): a case that has its filler number is another order that used the same placer number
    (a recycled one), and the order is a new case. An order without a filler number has only the placer's
    number: it finds the case holding it, filed under it or not (the same order sent again). Refused when the
    two numbers name different cases, or the case was filed for another placer number."""
    cases = Case.objects.select_for_update()
    by_accession = cases.filter(accession=order.accession).first()
    holder = cases.filter(placer_order=order.placer_order).first() if order.placer_order else None
    by_placer = holder if holder is not None and (
        not _has_filler(order) or holder.accession == order.placer_number) else None
    if by_accession and by_placer and by_accession.pk != by_placer.pk:
        raise OrderError(f"placer order number {order.placer_number} is case {by_placer.accession}, but accession "
                         f"{order.accession} is another case: one order is one case", location=locations["placer"],
                         code="207")
    case = by_accession or by_placer
    if case is not None and order.placer_order and case.placer_order not in ("", order.placer_order):
        raise OrderError(f"accession {order.accession} is the case of placer order number {case.placer_order}, not "
                         f"{order.placer_order}", location=locations["placer"], code="207")
    return case


def _has_filler(order: OrderData) -> bool:
    """Whether the order's accession is a filler order number (not the placer's, sent while none was known)."""
    return order.accession != order.placer_number


def _placer_to_record(order: OrderData, case: Case | None) -> str:
    """The placer number to store on the order's case: "" when another case holds it already (a case filed with
    its filler number under a recycled placer number): there it only informs, and one case keeps it."""
    if not order.placer_order:
        return ""
    others = Case.objects.filter(placer_order=order.placer_order)
    if case is not None:
        others = others.exclude(pk=case.pk)
    return "" if others.exists() else order.placer_order


def do_file_order(order: OrderData, *, locations: dict = HL7_LOCATIONS) -> FiledOrder:
    """Create or update the order's Patient (by MRN) and Case (by accession). Raises OrderError."""
    from django.core.exceptions import ValidationError

    department = order_department()
    data = order.patient
    patient = Patient.objects.select_for_update().filter(mrn=data.mrn).first()
    created_patient = patient is None
    demographics = {"family_name": tidy(data.family_name), "given_name": tidy(data.given_name),
                    "birth_date": data.birth_date, "sex": data.sex}
    if patient is not None and data.sex == Sex.UNKNOWN and patient.sex not in ("", Sex.UNKNOWN):
        demographics["sex"] = ""  # "unknown" to the sender is no news: a known sex stays
    record = "patient"  # the one being filed, for the location of a refusal
    try:
        if created_patient:
            missing = [name for name in ("family_name", "birth_date") if not demographics[name]]
            if missing:
                raise OrderError(f"a new patient needs {' and '.join(n.replace('_', ' ') for n in missing)}",
                                 location=locations["name" if "family_name" in missing else "birth_date"],
                                 code="101")
            patient = Patient(mrn=data.mrn, department=department,
                              **{k: v for k, v in demographics.items() if v not in ("", None)})
            patient.full_clean(exclude=["clinicians"])
            patient.save()
        else:
            check_same_patient(patient, data, locations)
            if adds_given_names(patient.given_name, data.given_name) or (
                    adds_given_names(data.given_name, patient.given_name) and patient.locking_reports().exists()):
                # No correction: the record's further given names stay, and the name a signed report states
                demographics["given_name"] = ""
            _update(patient, demographics, f"patient {data.mrn}", record, locations)
        record = "case"
        case = find_case(order, locations)
        created_case = case is None
        if created_case and order.change:
            raise OrderError(f"there is no case with accession {order.accession} to change (order control XO): "
                             "send a new order (NW)", location=locations["control"], code="204")
        if created_case:
            case = Case(accession=order.accession, patient=patient, department=department,
                        indication=order.indication or Indication.OTHER,
                        assay_clone=order.assay_clone or AssayClone.OTHER, specimen=order.specimen,
                        placer_order=_placer_to_record(order, None))
            case.full_clean()
            case.save()
        else:
            if case.patient_id != patient.pk:
                raise OrderError(f"accession {case.accession} is already the case of another patient",
                                 location=locations["accession"], code="207")
            _update(case, {"specimen": order.specimen, "indication": order.indication,
                           "assay_clone": order.assay_clone, "placer_order": _placer_to_record(order, case),
                           "accession": order.accession if _has_filler(order) else ""}, f"case {case.accession}",
                    record, locations)
    except ValidationError as exc:
        raise refused_values(exc, record, locations) from None
    return FiledOrder(patient, case, created_patient, created_case)
