"""HTML pages of the clinical record. Thin: access rules and ingest live in access/services."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from cases import access, reports, services
from cases.audit import log_access
from cases.choices import Role
from cases.forms import (
    CaseForm,
    MppForm,
    PatientForm,
    ReportAmendForm,
    ReportCommentForm,
    ReportDraftForm,
    ReportSignForm,
    SlideQcOverrideForm,
    SlideUploadForm,
)
from cases.models import ReportConflict, ReportDocument, ReportError
from cases.uploads import STORAGE_FULL, storage_full


def role_required(*roles):
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if not access.has_role(request.user, *roles):
                raise PermissionDenied("Your role does not give access to this page.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


clinical = role_required(Role.ADMIN, Role.PATHOLOGIST)


@login_required
def home(request):
    user = request.user
    if access.has_role(user, Role.ADMIN, Role.PATHOLOGIST):
        return redirect("cases:case-list")
    if access.has_role(user, Role.ANNOTATOR):
        return redirect("annotations:session-list")  # annotators work field by field
    if access.has_role(user, Role.CLINICIAN):
        return redirect("cases:report-list")
    raise PermissionDenied("Your account has no role yet; ask an administrator.")


@clinical
def case_list(request):
    cases = access.visible_cases(request.user).select_related("patient", "department")
    query = request.GET.get("q", "").strip()
    if query:
        cases = cases.filter(accession__icontains=query) | cases.filter(patient__mrn__icontains=query)
    worklist = services.case_worklist(cases)
    log_access(*{case.patient for group in worklist for case in group["cases"]})
    return render(request, "cases/case_list.html", {"worklist": worklist, "query": query})


@clinical
def case_create(request):
    form = CaseForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                case = form.save(commit=False)
                case.created_by = request.user
                case.save()
                case.assigned_to.add(request.user)
        except IntegrityError:  # the same accession registered at the same moment, past the form's check
            form.add_error(None, SAVED_CONCURRENTLY)
        else:
            messages.success(request, f"Case {case.accession} created.")
            return redirect(case)
    return render(request, "cases/form.html", {"form": form, "title": "New case"})


SAVED_CONCURRENTLY = ("Not saved: the same number was registered at the same moment by another request. Reload "
                      "and check before trying again.")
SIGNED_CASE_UPLOAD = ("This case has a signed report: a slide uploaded now is not part of it. To report on "
                      "it, amend the signed report (with a reason) from the case's report page.")


@clinical
def case_detail(request, pk):
    case = get_object_or_404(access.visible_cases(request.user).select_related("patient"), pk=pk)
    signed = case.locking_reports().exists()
    form = SlideUploadForm()
    if request.method == "POST":
        uploads = request.FILES  # parses the body; the upload handler flags an oversized one
        if getattr(request, "upload_too_large", False):
            messages.error(request, "The upload is larger than the configured limit.")
            return redirect(case)
        if storage_full(request):
            messages.error(request, STORAGE_FULL)
            return redirect(case)
        form = SlideUploadForm(request.POST, uploads)
        if form.is_valid():
            try:
                sources = services.sources_from_uploads(form.cleaned_data["files"])
                result = services.do_ingest_slide(sources, case=case, uploaded_by=request.user,
                                                  mpp=form.cleaned_data["mpp"], marker=form.cleaned_data["marker"])
            except services.IngestError as exc:
                form.add_error("files", str(exc))
            else:
                if result.duplicate:
                    messages.warning(request, "This file is already stored; showing the existing slide.")
                else:
                    messages.success(request, "Slide uploaded.")
                if signed:
                    messages.warning(request, SIGNED_CASE_UPLOAD)
                return redirect(result.slide)
    log_access(case, case.patient)
    return render(request, "cases/case_detail.html", {"case": case, "slides": services.slide_overview(case.slides.all()),
                                                      "form": form, "signed_case_warning": signed and SIGNED_CASE_UPLOAD})


@clinical
def patient_list(request):
    patients = list(access.visible_patients(request.user).select_related("department")[:200])
    log_access(*patients)
    return render(request, "cases/patient_list.html", {"patients": patients})


@clinical
def patient_create(request):
    form = PatientForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                patient = form.save()
        except IntegrityError:  # the same MRN registered at the same moment, past the form's check
            form.add_error(None, SAVED_CONCURRENTLY)
        else:
            messages.success(request, f"Patient {patient.mrn} registered.")
            return redirect("cases:case-create")
    return render(request, "cases/form.html", {"form": form, "title": "New patient"})


@clinical
def slide_detail(request, pk):
    slide = get_object_or_404(access.visible_slides(request.user).select_related("case__patient"), pk=pk)
    overriding = request.method == "POST" and "qc_override" in request.POST
    form = MppForm(None if overriding else (request.POST or None),
                   initial={"mpp_x": slide.mpp_x, "mpp_y": slide.mpp_y})
    qc_form = SlideQcOverrideForm(request.POST if overriding else None)
    if overriding and qc_form.is_valid():
        try:
            services.do_override_slide_qc(slide, request.user, qc_form.cleaned_data["qc_override"])
        except services.IngestError as exc:
            qc_form.add_error("qc_override", str(exc))
        else:
            messages.success(request, "Override recorded: reports of this slide print your reason.")
            return redirect(slide)
    elif request.method == "POST" and not overriding and form.is_valid():
        try:
            services.do_set_slide_mpp(slide, form.cleaned_data["mpp_x"], form.cleaned_data["mpp_y"])
        except services.IngestError as exc:
            form.add_error("mpp_x", str(exc))
        else:
            messages.success(request, "Resolution saved.")
            return redirect(slide)
    log_access(slide)
    may_override = access.has_role(request.user, Role.PATHOLOGIST)
    return render(request, "cases/slide_detail.html", {"slide": slide, "form": form,
                                                       "qc_form": qc_form if may_override or qc_form.errors else None,
                                                       "slide_images": services.associated_images_of(slide)})


@clinical
def slide_thumbnail(request, pk):
    slide = get_object_or_404(access.visible_slides(request.user), pk=pk)
    response = thumbnail_response(slide)
    log_access(slide)  # the case's tissue, as the API's thumbnail logs it
    return response


@login_required
def slide_associated_image(request, pk, name):
    """The slide's label or macro image: pathologists and admins only (the label can name the patient)."""
    services.check_may_view_associated_images(request.user)
    slide = get_object_or_404(access.visible_slides(request.user), pk=pk)
    try:
        data = services.do_read_associated_image(slide, name)
    except services.AssociatedImageMissing as exc:  # the styled 404 page, saying why
        return render(request, "404.html", {"reason": str(exc)}, status=404)
    log_access(slide)
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, no-store"  # may show the patient's name: not kept after the page
    return response


@role_required(Role.ADMIN, Role.PATHOLOGIST, Role.ANNOTATOR)
def annotator_slides(request):
    slides = list(access.pseudonymous_slides(request.user).select_related("case")[:200])
    for slide in slides:
        slide.description = services.pseudonymous_description(slide)
    return render(request, "cases/annotator_slides.html", {"slides": slides})


@role_required(Role.ADMIN, Role.PATHOLOGIST, Role.ANNOTATOR)
def pseudo_slide_thumbnail(request, pseudo_id):
    return thumbnail_response(get_object_or_404(access.pseudonymous_slides(request.user), pseudo_id=pseudo_id))


@role_required(Role.ADMIN, Role.PATHOLOGIST, Role.CLINICIAN)
def report_list(request):
    reports = list(access.visible_reports(request.user).select_related("case__patient")[:200])
    # Each row names its patient: one entry per patient shown (a set, as on the case list), not per row.
    log_access(*reports, *{report.case.patient for report in reports})
    return render(request, "cases/report_list.html", {"reports": reports})


@clinical
def case_report(request, pk):
    """The case's report: versions, the open draft (comment, sign), a new draft, an amendment."""
    case = get_object_or_404(access.visible_cases(request.user).select_related("patient"), pk=pk)
    versions = list(case.reports.select_related("signed_by", "job").order_by("-version"))
    latest = versions[0] if versions else None
    jobs = reports.case_jobs(case)
    forms = {"draft": ReportDraftForm(jobs=jobs), "comment": ReportCommentForm(initial={"comment": latest.comment}
                                                                                 if latest else None),
             "sign": ReportSignForm(), "amend": ReportAmendForm()}
    if request.method == "POST":
        step = request.POST.get("step")
        try:
            if step == "draft":
                forms["draft"] = form = ReportDraftForm(request.POST, jobs=jobs)
                if form.is_valid():
                    reports.do_create_draft(case, form.cleaned_data["job"], request.user,
                                            comment=form.cleaned_data["comment"] or None)
                    messages.success(request, "Draft report prepared from the analysis.")
                    return redirect("cases:case-report", pk=case.pk)
            elif step in ("comment", "sign", "amend") and latest is not None:
                form_class = {"comment": ReportCommentForm, "sign": ReportSignForm, "amend": ReportAmendForm}[step]
                forms[step] = form = form_class(request.POST)
                if form.is_valid():
                    if step == "comment":
                        reports.do_update_draft(latest, request.user, form.cleaned_data["comment"])
                        messages.success(request, "Comment saved.")
                    elif step == "sign":
                        from cases.auth import check_reauthentication  # counted like a login (django-axes)

                        # What the page showed the signer (reports.draft_fingerprint), not the draft as it
                        # is now: one prepared again by a colleague since is refused, not signed unseen.
                        fingerprint = request.POST.get("draft_fingerprint", "")
                        if not fingerprint:
                            raise ReportError(reports.FINGERPRINT_MISSING)
                        check_reauthentication(request, request.user, form.cleaned_data["password"])
                        reports.do_sign(latest, request.user, form.cleaned_data["password"], fingerprint)
                        messages.success(request, f"Version {latest.version} signed.")
                    else:
                        new = reports.do_amend(latest, request.user, form.cleaned_data["reason"],
                                               comment=form.cleaned_data["comment"] or None)
                        messages.success(request, f"Amendment started: draft version {new.version}.")
                    return redirect("cases:case-report", pk=case.pk)
        except ReportConflict as exc:
            # The report changed since the page was loaded (signed, or prepared again): show it as it is now.
            messages.error(request, str(exc))
            return redirect("cases:case-report", pk=case.pk)
        except ReportError as exc:
            if step in forms:  # shown once, on the form that was sent
                forms[step].add_error(None, str(exc))
            else:
                messages.error(request, str(exc))
    if latest is not None:
        # The slide's check as signing would record it, read once for both the page and its fingerprint.
        latest.state_slide_qc()
    log_access(case, case.patient, *versions)
    return render(request, "cases/case_report.html", {
        "case": case, "versions": versions, "latest": latest, "jobs": jobs, "forms": forms,
        "may_author": access.has_role(request.user, Role.PATHOLOGIST),
        "draft_fingerprint": reports.draft_fingerprint(latest) if latest and not latest.is_locked else "",
    })


@role_required(Role.ADMIN, Role.PATHOLOGIST, Role.CLINICIAN)
def report_detail(request, pk):
    """One report version (earlier versions stay viewable), with its downloads."""
    report = get_object_or_404(access.visible_reports(request.user).select_related("case__patient", "signed_by"),
                               pk=pk)
    report.state_slide_qc()  # a draft shows its slide's check as it stands (what signing records)
    log_access(report, report.case.patient)
    hashes = dict(ReportDocument.objects.filter(report=report).values_list("kind", "sha256"))
    return render(request, "cases/report_detail.html", {"report": report, "hashes": hashes})


def thumbnail_response(slide):
    if not slide.thumbnail:
        raise Http404("no thumbnail")
    try:
        response = FileResponse(slide.thumbnail.open("rb"), content_type="image/png")
    except FileNotFoundError:
        raise Http404("thumbnail file missing") from None
    response["Cache-Control"] = "private, no-store"  # a patient's slide: not kept after the page
    return response
