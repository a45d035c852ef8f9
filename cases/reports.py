"""Reports: score snapshots, the draft → signed → amended services, and the FHIR R4 export.

Thin callers (API, pages, analyze_slide) use the check_*/do_* functions; transitions themselves
live on cases.models.Report (sign, amend). The PDF is built in cases.report_pdf.
"""

from __future__ import annotations

from pdl1site.conf import settings
from django.db import transaction

from analysis.choices import JobStatus, Marker
from analysis.compartments import marker_compartment, recorded_compartments
from analysis.scoring import Interval, interval_text, score_summary
from cases import access
from cases.choices import ReportStatus, Role, ScoreType
from cases.models import Case, CutoffTable, Patient, Report, ReportConflict, ReportError, Slide

# LOINC 85147-7: PD-L1 by clone 22C3 (tumour proportion score), as issue 7 specifies.
LOINC = "http://loinc.org"
LOINC_PDL1_22C3 = "85147-7"
MRN_SYSTEM = settings.PDL1_FHIR_MRN_SYSTEM
ACCESSION_SYSTEM = settings.PDL1_FHIR_ACCESSION_SYSTEM
LOCAL_CODES = "urn:pdl1:codes"

__all__ = ["ReportError", "ReportConflict", "check_may_author", "do_create_draft", "do_update_draft", "do_sign",
           "do_amend", "draft_fingerprint", "score_snapshot", "cutoff_table", "fhir_bundle", "fhir_bundle_resource",
           "case_jobs"]

DRAFT_CHANGED = ("The draft changed since you opened it: review it again (reload the report), then sign. "
                 "Nothing was signed.")
FINGERPRINT_MISSING = ("The signature does not say which draft you reviewed (draft_fingerprint): reload the report "
                       "and sign what it shows. Nothing was signed.")


def cutoff_table(assay_clone: str, indication: str, score_type: str) -> dict | None:
    table = (CutoffTable.objects.filter(assay_clone=assay_clone, indication=indication, score_type=score_type)
             .prefetch_related("cutoffs").first())
    return table.as_dict() if table else None


def report_tps_table(case: Case) -> dict | None:
    """The TPS cut-off table a report on `case` interprets with (its clone and indication's; None when
    none). The viewer reads the same one (viewer.scores.job_scores), so both state the same category and
    flag the same results."""
    return cutoff_table(case.assay_clone, case.indication, ScoreType.TPS)


def method_of(job) -> dict:
    """What ran, as the job recorded it when it was started (never inferred from its detector's name)."""
    version, provenance = job.model_version, job.provenance or {}
    kind = provenance.get("kind") or ("model" if version else "classic" if job.detector == "classic" else "")
    method = {"detector": job.detector, "kind": kind or "unrecorded",
              "software_version": job.software_version or "not recorded", "job": job.pk,
              "finished_at": job.finished_at.isoformat() if job.finished_at else None,
              "tissue_area_mm2": job.tissue_area_mm2, "synthetic_training_data": bool(version and version.synthetic)}
    if version is not None:
        method.update(model_version=version.name, model_sha256=version.sha256, architecture=version.architecture,
                      model_status=version.status)
    elif kind == "classic":
        method.update(model_version="none (classic colour deconvolution, no trained weights)", model_sha256="",
                      architecture="classic", classic_parameters=provenance.get("parameters", {}))
        if "dab_threshold" in (job.summary or {}):  # the cut the slide's own cells gave at merge
            method["slide_dab_threshold"] = job.summary["dab_threshold"]
    elif kind == "checkpoint-file":
        method.update(model_version=f"unregistered checkpoint {job.detector} (research use only)",
                      model_sha256=provenance.get("sha256", ""), architecture="unregistered")
    else:  # a job from before attribution was recorded: say so rather than guess
        method.update(model_version="not recorded", model_sha256="", architecture="not recorded")
    return method


def method_description(method: dict) -> str:
    """One sentence naming exactly what ran, for the PDF and the FHIR method text."""
    sha = method.get("model_sha256")
    if method.get("kind") == "classic" or (not sha and method.get("architecture") == "classic"):
        params = dict(method.get("classic_parameters") or {})
        if params.get("dab_threshold") is None and "effective_dab_threshold" in params:
            params["dab_threshold"] = params["effective_dab_threshold"]  # None: the compartment's constant
        # dab_threshold as recorded ("adaptive": read from the slide's own cells), not a derived default
        shown = ", ".join(f"{k} {params[k]}" for k in ("compartment", "threshold", "dab_threshold") if k in params)
        if method.get("slide_dab_threshold") is not None:
            shown += f" (this slide: DAB OD {method['slide_dab_threshold']})"
        what = "classic colour deconvolution (analysis.classic, no trained weights" + (f"; {shown})" if shown else ")")
    else:
        what = f"model {method.get('model_version', '?')}" + (f" (sha256 {sha})" if sha else " (weights not recorded)")
    return (f"Automated nucleus detection with {what}, platform version {method.get('software_version', 'not recorded')}, "
            f"analysis job {method.get('job', '-')}")


def score_snapshot(case: Case, job) -> dict:
    """The scores a report states: the job's result with pathologists' corrections applied,
    interpreted with the cut-off tables configured for the case's assay and indication."""
    from cases.results import NoResult, ResultUnreadable, job_results

    interval, error_basis, cut_note = None, "", ""
    try:
        scores = job_results().scores(job)
        counts, corrections = scores["counts"], job_results().correction_version(job)
        interval = Interval(**scores["tps_interval"]) if scores["tps_interval"] else None
        error_basis, cut_note = scores["detector_error"], scores.get("cut_note", "")
    except ResultUnreadable as exc:  # its corrections and regions cannot be applied: no number is stated
        raise ReportError(str(exc)) from None
    except NoResult:  # no store at all: the merged summary (no corrections can exist without one)
        counts, corrections = dict(job.summary.get("counts", {})), 0
    summary = score_summary(counts,
                            tps_table=report_tps_table(case),
                            cps_table=cutoff_table(case.assay_clone, case.indication, ScoreType.CPS),
                            tps_interval=interval)
    summary["tps"]["detector_error"] = error_basis
    if cut_note:  # the slide-wide positivity cut was read outside the regions that now count
        summary["tps"]["cut_note"] = cut_note
    return {**summary, "corrections_version": corrections, "method": method_of(job),
            "assay_clone": case.assay_clone, "indication": case.indication,
            "slide_qc": job.slide.qc_snapshot()}


def qc_statement(scores: dict) -> str:
    """What a report says about its slide's check before scoring (PDF and FHIR); '' when unknown."""
    qc = scores.get("slide_qc") or {}
    if qc.get("status") == "passed":
        return "Slide check before scoring passed (brightfield, tissue, haematoxylin and DAB)."
    if qc.get("status") in ("failed", "overridden"):
        text = "Slide check before scoring FAILED: " + "; ".join(qc.get("failures") or ["unspecified"]) + "."
        override = qc.get("override")
        if override:
            text += (f" Scored on a pathologist's override by {override['by']} "
                     f"({(override.get('at') or '')[:10]}): {override['reason']}")
        return text
    if qc.get("status") == "unchecked":
        return "Slide not checked before scoring (analysed before slide checks existed)."
    return ""


# --- checks ---------------------------------------------------------------------------------------

def check_may_author(user, case: Case | None = None):
    """Pathologists with access to the case write and sign its reports."""
    if not access.has_role(user, Role.PATHOLOGIST):
        raise ReportError("Only pathologists create, sign and amend reports.")
    if case is not None and not access.visible_cases(user).filter(pk=case.pk).exists():
        raise ReportError("no such case")


def case_jobs(case: Case):
    from analysis.models import AnalysisJob

    return AnalysisJob.objects.filter(slide__case=case, status=JobStatus.DONE).select_related("slide", "model_version")


def check_job_for_case(case: Case, job):
    if job is None or not case_jobs(case).filter(pk=job.pk).exists():
        raise ReportError("the analysis must be a finished job on a slide of this case")
    marker = job.slide.marker
    if marker != Marker.PDL1:  # the report, its PDF title and its FHIR code (LOINC 85147-7) say PD-L1
        raise ReportError(f"The slide is stained for {marker}, not PD-L1: a PD-L1 report states PD-L1 slides only. "
                          "Correct the slide's marker if it was recorded wrongly.")
    # Positivity read in another compartment than PD-L1's (the membrane) is not a PD-L1 TPS: a job run with
    # compartment=nucleus, or run while the slide was recorded as Ki-67 and its marker corrected since.
    expected, ran = marker_compartment(marker), recorded_compartments(job)
    if ran != {expected}:
        other = ", ".join(sorted(ran - {expected}))
        raise ReportError(f"The analysis (job {job.pk}) read positivity in the {other}, not in the {expected} where "
                          f"{marker} is read: its numbers are not a {marker} score. Run the analysis again on this "
                          "slide (a new run reads the marker's own compartment) and report that one.")
    return job


# What a draft states that signing must find unchanged, with the words the refusal uses.
_DRAFT_PARTS = {
    "counts": "the counts (corrections or regions changed)",
    "tps": "the TPS, its interval or its cut-off table",
    "cps": "the CPS or its cut-off table",
    "adequacy": "the adequacy",
    "research_use": "the research-use status",
    "method": "the analysis method or its model's status",
    "assay_clone": "the case's assay clone",
    "indication": "the case's indication",
}


def check_draft_current(report: Report) -> None:
    """A draft states the analysis as it stood when it was prepared; signing refuses one that a fresh
    snapshot no longer matches (corrections or regions saved since, a cut-off table edited or withdrawn,
    the slide moved to another case or its marker changed, the model's status changed), so a signed
    report never states numbers other than those the viewer showed when it was signed. The slide's
    check before scoring is excluded: a draft states it as it stands (Report.state_slide_qc), and the
    draft_fingerprint the signer saw covers it."""
    if not report.job_id:
        return
    check_job_for_case(report.case, report.job)
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    fresh = json.loads(json.dumps(score_snapshot(report.case, report.job), cls=DjangoJSONEncoder))
    stored = json.loads(json.dumps(report.scores or {}, cls=DjangoJSONEncoder))
    changed = [words for key, words in _DRAFT_PARTS.items() if fresh.get(key) != stored.get(key)]
    changed += ["the corrections"] if fresh.get("corrections_version") != stored.get("corrections_version") else []
    if changed:
        raise ReportError("The analysis changed after this draft was prepared (" + "; ".join(changed) + "): "
                          "prepare the draft again from the analysis, check it, then sign.")


# --- actions ------------------------------------------------------------------------------------

def do_create_draft(case: Case, job, user=None, comment: str | None = None) -> Report:
    """The case's open draft, (re)filled from `job`; a new version 1 when the case has no report.

    A case with a signed report is changed through an amendment (do_amend), never a new draft.
    `user` None: a system draft (analyze_slide on the command line).
    """
    if user is not None:
        check_may_author(user, case)
    check_job_for_case(case, job)
    with transaction.atomic():
        reports = Report.objects.select_for_update().filter(case=case).order_by("-version")
        latest = reports.first()
        if latest is not None and latest.status != ReportStatus.DRAFT:
            raise ReportError("This case already has a signed report: amend it (with a reason) instead.")
        draft = latest or Report(case=case, version=1, created_by=user)
        draft.job, draft.scores = job, score_snapshot(case, job)
        if comment is not None:
            draft.comment = comment
        draft.save()
    return draft


def draft_fingerprint(report: Report) -> str:
    """sha256 (hex) of what signing this draft would state, as the caller holds it: its analysis job, its
    scores (counts, corrections version, TPS and CPS with their tables, adequacy, method, and the slide's
    check before scoring with any override, its reason, by whom and when), comment, amendment reason and
    the version it supersedes, and the case's and patient's reported fields (accession, specimen,
    indication, clone; MRN, names, birth date, sex). The report page sends it with the signature and the
    API returns it as `draft_fingerprint`: do_sign refuses when the draft no longer hashes to what the
    signer reviewed (prepared again from another job, its comment, a stated field or the slide's check
    changed). Callers showing a draft state its check first (Report.state_slide_qc): one that does not
    hashes the check the draft was prepared with, and is refused once the check has changed since."""
    import hashlib
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    case = report.case
    patient = case.patient

    def fields(record, names):
        return {name: getattr(record, record._meta.get_field(name).attname) for name in names}

    stated = {"report": report.pk, "case": report.case_id, "version": report.version, "job": report.job_id,
              "scores": report.scores or {}, "comment": report.comment or "",
              "amendment_reason": report.amendment_reason or "", "supersedes": report.supersedes_id,
              "case_fields": fields(case, Case.REPORTED_FIELDS),
              "patient_fields": fields(patient, Patient.REPORTED_FIELDS)}
    # Round-tripped through JSON first: the object a service just filled and the row read back hash alike.
    canonical = json.dumps(json.loads(json.dumps(stated, cls=DjangoJSONEncoder)), sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _not_a_draft(locked: Report, what: str) -> ReportConflict:
    signer = locked.signed_by
    state = "signed" + (f" by {signer.get_full_name() or signer.get_username()}" if signer else "")
    state += f" on {locked.signed_at:%Y-%m-%d %H:%M}" if locked.signed_at else ""
    if locked.status == ReportStatus.AMENDED:
        state += ", and has been superseded by an amendment since"
    return ReportConflict(f"Version {locked.version} is no longer a draft: it was {state}. {what} "
                          "A signed report changes only through an amendment (with a reason).")


def do_update_draft(report: Report, user, comment: str) -> Report:
    """Save a draft's comment. The row is locked and its status read from it, and only the comment is
    written: a request that loaded the draft before someone signed it is refused (ReportConflict), never
    writing its stale copy over the signed version."""
    check_may_author(user, report.case)
    with transaction.atomic():
        locked = Report.objects.select_for_update().get(pk=report.pk)
        if locked.status != ReportStatus.DRAFT:
            raise _not_a_draft(locked, "The comment was not saved.")
        locked.comment = comment
        locked.save(update_fields=["comment"])
    report.refresh_from_db()
    return report


def do_sign(report: Report, user, password: str, fingerprint: str | None = None) -> Report:
    """Sign the draft the signer reviewed. `fingerprint`: draft_fingerprint of the draft as the signer was
    shown it (the report page's form, the API's `draft_fingerprint`); None for a caller holding the very
    object it reviewed (the command line, tests), whose own fingerprint is used, with the slide's check as
    it stands. Compared under the row lock (with the case, patient and slide rows locked too): a draft
    prepared again, re-commented, whose stated case or patient fields changed, or whose slide's check or
    override changed since is refused (ReportConflict), and nothing is signed."""
    check_may_author(user, report.case)
    if fingerprint is None:
        fingerprint = draft_fingerprint(report.state_slide_qc())
    if not fingerprint:
        raise ReportError(FINGERPRINT_MISSING)
    with transaction.atomic():
        locked = Report.objects.select_for_update().get(pk=report.pk)
        if locked.status != ReportStatus.DRAFT:
            raise _not_a_draft(locked, "Nothing was signed.")
        # The rows the documents state, locked in Report.sign's order (case, then patient): an edit of the
        # case or patient waits for the signature instead of slipping in after the comparison.
        case = Case.objects.select_for_update().get(pk=locked.case_id)
        case.patient = Patient.objects.select_for_update().get(pk=case.patient_id)
        locked.case = case
        if locked.job_id:
            # The check the documents will state (Report.sign records it): an override or a check run again
            # waits for the signature instead of changing what was compared.
            locked.state_slide_qc(Slide.objects.select_for_update().get(pk=locked.job.slide_id))
        if draft_fingerprint(locked) != fingerprint:
            raise ReportConflict(DRAFT_CHANGED)
        refusal = locked.job.research_use_reason() if locked.job_id else ""
        if refusal:  # a research model's result never becomes a signed record
            raise ReportError(refusal)
        if locked.job_id:
            # Corrections and regions hold still until the signature commits: one saved after the check
            # below would otherwise be drawn into the signed PDF's maps beside counts that predate it.
            from cases.results import job_results

            job_results().lock_for_signing(locked.job)
        check_draft_current(locked)
        locked.sign(user, password)
    report.refresh_from_db()
    return report


def do_amend(report: Report, user, reason: str, comment: str | None = None) -> Report:
    check_may_author(user, report.case)
    with transaction.atomic():
        locked = Report.objects.select_for_update().get(pk=report.pk)
        return locked.amend(reason, user=user, comment=comment, rescore=score_snapshot)


# --- FHIR R4 --------------------------------------------------------------------------------------
# Built and validated with fhir.resources (its R4B models: R4's DiagnosticReport, Observation and
# Bundle are unchanged in R4B): a resource that does not fit its profile raises here, before it is
# stored or sent. Timestamps serialise as FHIR instants ("Z" for UTC).

def _fhir():
    from fhir.resources.R4B.bundle import Bundle, BundleEntry
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport
    from fhir.resources.R4B.observation import Observation

    return Bundle, BundleEntry, DiagnosticReport, Observation


def _observation(report: Report, key: str, part: dict, code: dict):
    *_, Observation = _fhir()
    obs = {
        "id": f"report-{report.pk}-{key}",
        "status": report.fhir_status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": code,
        "subject": _subject(report),
        "method": {"text": _method_text(report)},
    }
    if report.signed_at:
        obs["issued"] = report.signed_at
    if part.get("value") is None:
        obs["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                               "code": "not-performed"}], "text": part.get("status", "")}
    elif not report.scores["adequacy"]["adequate"]:
        obs["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                               "code": "error"}], "text": report.scores["adequacy"]["statement"]}
    else:
        obs["valueQuantity"] = {"value": part["value"], "unit": "%", "system": "http://unitsofmeasure.org",
                                "code": "%"}
        obs["interpretation"] = [{"text": part["category"] or part["status"]}]
        if part.get("cutoffs"):
            obs["note"] = [{"text": "Cut-offs ({}{}): {}".format(
                part.get("table") or "", "" if part.get("approved") else ", not approved",
                "; ".join(f">= {c['lower']:g}%: {c['label']}" for c in part["cutoffs"]))}]
        interval = part.get("interval")
        if interval:
            # FHIR R4 Observation.referenceRange is the normal range, not an uncertainty: the
            # 95 % interval travels as a note, with the near-cut-off warning when there is one.
            obs.setdefault("note", []).append({"text": interval_text(part)})
    return Observation(**obs)


def _subject(report: Report) -> dict:
    patient = report.case.patient
    return {"identifier": {"system": MRN_SYSTEM, "value": patient.mrn,
                           "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                "code": "MR"}]}},
            "display": f"{patient.family_name}, {patient.given_name}".strip(", ")}


def _method_text(report: Report) -> str:
    method = report.scores.get("method", {})
    return f"{method_description(method)}; reviewed by a pathologist; assay {report.case.assay_clone}"


def tps_statement(scores: dict) -> str:
    """The TPS in words, as the FHIR conclusion, the HL7 conclusion (TX) and the PDF state it: no number when
    the specimen is inadequate or no tumour cell was counted, as the structured value is withheld then (a
    number beside "insufficient" is a number a reader may act on)."""
    tps = scores["tps"]
    if tps.get("value") is None or not scores["adequacy"]["adequate"]:
        return f"TPS not evaluable: {tps.get('status') or 'no viable tumour cells counted'}"
    return f"TPS {tps['value']}%: {tps['category'] or tps['status']}"


def fhir_bundle(report: Report) -> dict:
    """A FHIR R4 collection Bundle: one DiagnosticReport and its Observations (TPS, CPS), as JSON data."""
    return fhir_bundle_resource(report).model_dump(mode="json", exclude_none=True)


def fhir_bundle_resource(report: Report):
    """The same Bundle as a validated fhir.resources model."""
    Bundle, BundleEntry, DiagnosticReport, _ = _fhir()
    case, scores = report.case, report.scores
    tps_code = ({"coding": [{"system": LOINC, "code": LOINC_PDL1_22C3,
                             "display": "PD-L1 by clone 22C3 [Interpretation] in Tissue by Immune stain"}],
                 "text": "PD-L1 tumour proportion score (22C3)"}
                if case.assay_clone == "22C3" else
                {"coding": [{"system": LOCAL_CODES, "code": f"pdl1-tps-{case.assay_clone}"}],
                 "text": f"PD-L1 tumour proportion score ({case.assay_clone})"})
    cps_code = {"coding": [{"system": LOCAL_CODES, "code": f"pdl1-cps-{case.assay_clone}"}],
                "text": f"PD-L1 combined positive score ({case.assay_clone})"}
    observations = [_observation(report, "tps", scores["tps"], tps_code),
                    _observation(report, "cps", scores["cps"], cps_code)]
    conclusion = [tps_statement(scores),
                  f"CPS: {scores['cps']['status'] if scores['cps']['value'] is None else scores['cps']['value']}",
                  scores["adequacy"]["statement"]]
    if scores["tps"].get("near_cutoff"):
        conclusion.append(scores["tps"]["uncertainty"])
    if scores["tps"].get("cut_note"):
        conclusion.append(scores["tps"]["cut_note"])
    if qc_statement(scores):
        conclusion.append(qc_statement(scores))
    if scores.get("research_use"):
        conclusion.append("Research use only: no approved cut-off for this assay and indication.")
    diagnostic = {
        "id": f"report-{report.pk}",
        # This version's identifier, and the one every version of the case's report shares (the
        # accession), so a receiving system can tell that an amended version replaces the final one.
        "identifier": [{"system": ACCESSION_SYSTEM, "value": f"{case.accession}-v{report.version}",
                        "use": "official"},
                       {"system": ACCESSION_SYSTEM, "value": case.accession, "use": "secondary"}],
        "status": report.fhir_status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "SP",
                                  "display": "Surgical Pathology"}]}],
        # FHIR allows no empty arrays: a clone without a LOINC code has a text only.
        "code": {**({"coding": [{"system": LOINC, "code": LOINC_PDL1_22C3}]} if case.assay_clone == "22C3" else {}),
                 "text": f"PD-L1 IHC ({case.assay_clone}) report"},
        "subject": _subject(report),
        "conclusion": "; ".join(conclusion) + (f". {report.comment}" if report.comment else ""),
        "result": [{"reference": f"Observation/{o.id}"} for o in observations],
    }
    if report.signed_at:
        diagnostic["issued"] = report.signed_at
        diagnostic["effectiveDateTime"] = report.signed_at
    if report.signed_by:
        name = report.signed_by.get_full_name() or report.signed_by.get_username()
        diagnostic["resultsInterpreter"] = [{"display": name}]
    if report.supersedes_id:
        replaced = report.supersedes
        diagnostic["extension"] = [
            {"url": "urn:pdl1:amendment-reason", "valueString": report.amendment_reason},
            # FHIR R4 DiagnosticReport has no "replaces": the version this one amends, by its identifier.
            {"url": "urn:pdl1:replaces", "valueIdentifier": {"system": ACCESSION_SYSTEM,
                                                             "value": f"{case.accession}-v{replaced.version}"}}]
    entries = [DiagnosticReport(**diagnostic), *observations]
    return Bundle(type="collection", entry=[
        BundleEntry(fullUrl=f"urn:pdl1:{r.get_resource_type()}/{r.id}", resource=r) for r in entries])
