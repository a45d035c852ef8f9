"""FHIR R4 ServiceRequest in: validated with fhir.resources, mapped to the same OrderData as HL7 v2 orders.

The ServiceRequest carries its Patient (and optionally its Specimen) as contained resources, or names
an already known patient by subject.identifier (the MRN system, cases.reports.MRN_SYSTEM). Mapping
table: docs/integration.md.
"""

from __future__ import annotations

import hashlib
import json

from integration.orders import (OrderData, OrderError, PatientData, SEX_CODES, assay_of, check_text, given_names,
                                indication_of, placer_key, tidy)

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
FILLER_TYPES, PLACER_TYPES = ("ACSN", "FILL"), ("PLAC",)


def _validate(body: bytes):
    from fhir.resources.R4B.servicerequest import ServiceRequest
    from pydantic import ValidationError

    if b"\x00" in body or b"\\u0000" in body:  # no FHIR string holds NUL (and PostgreSQL text cannot)
        raise OrderError("the body contains NUL characters", reject=True, code="102")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OrderError(f"the body is not JSON: {exc}", reject=True, code="102") from None
    if not isinstance(data, dict) or data.get("resourceType") != "ServiceRequest":
        raise OrderError("the body must be a FHIR ServiceRequest resource", reject=True, code="200")
    try:
        return ServiceRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:10])
        raise OrderError(f"not a valid FHIR R4 ServiceRequest: {problems}", reject=True, code="102") from None


def _type_code(identifier) -> str:
    codings = identifier.type.coding if identifier.type and identifier.type.coding else []
    return next((c.code for c in codings if c.system in (V2_0203, None)), "")


def _texts(concepts) -> list[str]:
    texts = []
    for concept in concepts or []:
        texts += [concept.text or ""] + [c.code or "" for c in concept.coding or []] + \
                 [c.display or "" for c in concept.coding or []]
    return [t for t in texts if t]


def _contained(request, reference) -> object | None:
    ref = (reference.reference or "") if reference else ""
    if not ref.startswith("#"):
        return None
    return next((r for r in request.contained or [] if r.id == ref[1:]), None)


def _patient(request) -> PatientData:
    from cases.reports import MRN_SYSTEM
    from integration.orders import parse_date

    subject = request.subject
    patient = _contained(request, subject)
    identifiers = (patient.identifier or []) if patient is not None else ([subject.identifier] if subject.identifier else [])
    mrn = next((i.value for i in identifiers if i.system == MRN_SYSTEM and i.value), "")
    if not mrn:
        raise OrderError(f"the patient has no identifier with system {MRN_SYSTEM} (subject: a contained Patient, or "
                         "subject.identifier)", location="ServiceRequest.subject", code="101")
    data = PatientData(mrn=mrn.strip())
    if patient is not None:
        name = (patient.name or [None])[0]
        if name is not None:
            data.family_name, data.given_name = tidy(name.family or ""), given_names(*(name.given or []))
        if patient.birthDate:
            data.birth_date = parse_date(str(patient.birthDate), "Patient.birthDate")
        if patient.gender:
            data.sex = SEX_CODES.get(patient.gender.upper(), "")
    return data


def read_service_request(body: bytes):
    """(ServiceRequest model, OrderData) of a POSTed ServiceRequest (raises OrderError)."""
    request = _validate(body)
    if request.status not in ("active", "draft"):
        raise OrderError(f"status {request.status!r} is not accepted: send an active order", reject=True,
                         location="ServiceRequest.status", code="103")
    if request.intent not in ("order", "original-order", "filler-order"):
        raise OrderError(f"intent {request.intent!r} is not an order", reject=True, location="ServiceRequest.intent",
                         code="103")
    by_type, systems = {}, {}
    for identifier in request.identifier or []:
        if identifier.value:
            by_type.setdefault(_type_code(identifier), identifier.value.strip())
            systems.setdefault(_type_code(identifier), (identifier.system or "").strip())
    placer = next((by_type[t] for t in PLACER_TYPES if t in by_type), "")
    placer_system = next((systems[t] for t in PLACER_TYPES if t in by_type), "")
    accession = next((by_type[t] for t in FILLER_TYPES if t in by_type), "") or placer
    if not accession:
        raise OrderError("no accession: give an identifier of type ACSN or FILL (filler order number) or PLAC "
                         f"(placer order number), system {V2_0203}", location="ServiceRequest.identifier", code="101")
    specimen = ""
    for reference in request.specimen or []:
        found = _contained(request, reference)
        if found is not None:
            site = _texts([found.collection.bodySite]) if found.collection and found.collection.bodySite else []
            specimen = ", ".join(t for t in (_texts([found.type])[:1] + site[:1]) if t)
            break
    if not specimen:
        specimen = ", ".join(_texts(request.bodySite)[:1])
    indication = indication_of(*_texts(request.reasonCode), location="ServiceRequest.reasonCode")
    clone = assay_of(*_texts([request.code] if request.code else []), location="ServiceRequest.code")
    order = OrderData(patient=_patient(request), accession=accession,
                      placer_order=placer_key(placer, placer_system) if placer else "", placer_number=placer,
                      specimen=specimen[:200],
                      indication=indication, assay_clone=clone)
    for location, text in (("Patient.identifier", order.patient.mrn), ("Patient.name", order.patient.family_name),
                           ("Patient.name", order.patient.given_name), ("ServiceRequest.identifier", accession),
                           ("ServiceRequest.identifier", placer), ("ServiceRequest.identifier", placer_system),
                           ("ServiceRequest.specimen", specimen)):
        check_text(text, location)  # what is stored; the vocabulary values (indication, clone) are ours
    return request, order


def control_id_of(body: bytes, idempotency_key: str) -> str:
    """The request's idempotency key: its Idempotency-Key header, or the sha256 of the exact body."""
    return (idempotency_key or "").strip()[:199] or "sha256:" + hashlib.sha256(body).hexdigest()


def outcome(severity: str, code: str, text: str, location: str = "") -> dict:
    """A validated FHIR OperationOutcome as JSON data."""
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    issue = {"severity": severity, "code": code, "diagnostics": text}
    if location:
        issue["expression"] = [location]
    return OperationOutcome(issue=[issue]).model_dump(mode="json", exclude_none=True)
