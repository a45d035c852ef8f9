"""Annotation pages: the annotator's sessions, the point-annotation page, and the reviewer's
project and field pages (review of every annotator's points, accept/return, training).

Pseudonymous only: the pages show the slide's pseudo id, the field's level-0 region and the
project's label set - never a patient, case, accession or file name.  Points are read and saved
through the REST API (`/api/annotation/sessions/{id}/points/`), with its version (409 on stale).
Reviewer actions (new project, annotators, sampled or drawn fields, accept/return, training) are
HTML forms (annotations.forms) posting to thin views over annotations.services.  A refused form
re-renders with what was typed and one error message listing every problem; nothing is created.
"""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from analysis.nets import BACKBONES
from annotations import choices, dataset, forms, services
from annotations.choices import DEFAULT_LABELS
from annotations.models import TransitionError
from cases.choices import Role
from cases.services import pseudonymous_description
from cases.views import role_required
from workers.training import TrainingError, do_cancel_training, eta_text

ANNOTATION_ROLES = (Role.ADMIN, Role.PATHOLOGIST, Role.ANNOTATOR)
MANAGER_ROLES = (Role.ADMIN, Role.PATHOLOGIST)


def own_sessions(user):
    """The user's own sessions on slides they may still see (pseudonymously)."""
    return services.visible_sessions(user).filter(annotator=user).select_related("field__slide", "field__project")


def _error_text(exc) -> str:
    problems = getattr(exc, "problems", None) or []
    return getattr(exc, "summary", str(exc)) + (": " + "; ".join(problems) if problems else "")


@role_required(*ANNOTATION_ROLES)
def session_list(request):
    sessions = list(own_sessions(request.user).select_related("field__slide__case")
                    .order_by("field__project__name", "field_id")[:500])
    for session in sessions:
        session.slide_description = pseudonymous_description(session.field.slide)
    return render(request, "annotations/session_list.html", {"sessions": sessions})


@role_required(*ANNOTATION_ROLES)
def session_page(request, pk):
    """The annotator edits their own session; a project's reviewer sees any of its sessions read-only."""
    session = get_object_or_404(
        services.visible_sessions(request.user).select_related("field__slide", "field__project", "annotator"), pk=pk)
    own = session.annotator_id == request.user.pk
    field, project = session.field, session.field.project
    min_point_px, min_point_words = services.min_point_distance(field)
    config = {
        "session": session.pk,
        "field": field.region,
        "labels": choices.shown_labels(project.labels),
        "dzi": reverse("viewer:pseudo-dzi", args=[field.slide.pseudo_id]),
        "points": reverse("api:annotation-session-points", args=[session.pk]),
        "submit": reverse("api:annotation-session-submit", args=[session.pk]),
        "import": reverse("api:annotation-session-import-points", args=[session.pk]),
        "own": own,
        "editable": own and session.editable,
        "status": session.status,
        # The server refuses two points this close (services.check_points): the page does not place one.
        "min_point_px": min_point_px, "min_point_words": min_point_words,
    }
    return render(request, "annotations/session.html", {
        "session": session, "field": field, "project": project, "labels": config["labels"],
        "slide_pseudo_id": field.slide.pseudo_id,
        "slide_description": services.slide_description(field.slide, project),
        "config": config, "own": own, "can_review": services.can_manage(request.user, project),
    })


# ----------------------------------------------------------------------------
# Reviewer pages (the project's pathologists and administrators)
# ----------------------------------------------------------------------------


def _attempt(request, form, failure, action):
    """`action(form.cleaned_data)` when the form parses and the service accepts it; otherwise None and
    an error message listing every problem (the services are atomic: nothing was created)."""
    if not form.is_valid():
        messages.error(request, f"{failure}. " + "; ".join(forms.problems_of(form)))
        return None
    try:
        return action(form.cleaned_data)
    except (services.AnnotationError, services.NotAllowed) as exc:
        messages.error(request, f"{failure}. " + _error_text(exc))
        return None


def _posted(request):
    return request.POST if request.method == "POST" else None


@role_required(*MANAGER_ROLES)
def project_list(request):
    """The projects the user manages, and the New project form (posted here)."""
    form = forms.ProjectForm(_posted(request), user=request.user)
    if request.method == "POST":
        project = _attempt(request, form, "Project not created", lambda d: services.do_create_project(
            request.user, d["name"], d["indication"], d["marker"], form.extra_labels(), list(d["annotators"])))
        if project is not None:
            messages.success(request, f"Project {project.name!r} created. Add its fields below.")
            return redirect("annotations:project", pk=project.pk)
    projects = services.managed_projects(request.user).order_by("-created_at")[:200]
    return render(request, "annotations/project_list.html", {
        "projects": [(p, services.project_progress(p, request.user)) for p in projects], "form": form,
        "tumour_labels": DEFAULT_LABELS,
    }, status=400 if request.method == "POST" else 200)


def _managed_project(user, pk):
    return get_object_or_404(services.managed_projects(user), pk=pk)


def _project_page(request, project, status=200, **bound):
    """The project page; `bound` holds a refused form to show again with what was typed."""
    user = request.user
    # Per slide: fields on slides the user may not see are left out (and only counted).
    fields = list(services.visible_fields(user).filter(project=project).select_related("slide__case")
                  .prefetch_related("sessions__annotator").order_by("pk"))
    services.describe_slides(fields, project)
    return render(request, "annotations/project.html", {
        "project": project, "labels": choices.shown_labels(project.labels), "fields": fields,
        "progress": services.project_progress(project, user),
        # fields the user annotates with an open session: the others' point counts are not shown there either
        "blind": set(services.blind_fields(user).values_list("field", flat=True)),
        "hidden_fields": services.hidden_fields(user, project).count(),
        "trainings": [(run, eta_text(run)) for run in dataset.training_runs(project)], "backbones": BACKBONES,
        "annotators": project.annotators.order_by("username"),
        "annotators_form": bound.get("annotators_form") or forms.AnnotatorsForm(user=user, project=project),
        "sample_form": bound.get("sample_form") or forms.SampleFieldsForm(user=user, project=project,
                                                                           auto_id="sample_%s"),
        "draw_form": forms.SlideForm(user=user, project=project, auto_id="draw_%s"),
    }, status=status)


@role_required(*MANAGER_ROLES)
def project_page(request, pk):
    return _project_page(request, _managed_project(request.user, pk))


@require_POST
@role_required(*MANAGER_ROLES)
def project_annotators(request, pk):
    """Add annotators: the service gives each a session on every field (refused when one cannot see a slide)."""
    project = _managed_project(request.user, pk)
    form = forms.AnnotatorsForm(request.POST, user=request.user, project=project)
    created = _attempt(request, form, "No annotator added",
                       lambda d: services.do_assign_annotators(project, list(d["annotators"]), manager=request.user))
    if created is None:
        return _project_page(request, project, 400, annotators_form=form)
    names = ", ".join(u.username for u in form.cleaned_data["annotators"])
    messages.success(request, f"Added {names}: {len(created)} new session(s), one per field and annotator.")
    return redirect("annotations:project", pk=project.pk)


@require_POST
@role_required(*MANAGER_ROLES)
def project_sample_fields(request, pk):
    """Sample n square fields on tissue of a slide (services.do_sample_fields)."""
    project = _managed_project(request.user, pk)
    form = forms.SampleFieldsForm(request.POST, user=request.user, project=project, auto_id="sample_%s")
    fields = _attempt(request, form, "No fields sampled", lambda d: services.do_sample_fields(
        project, d["slide"], d["n"], d["size_px"], d["mpp"], d["seed"] or 0, user=request.user))
    if fields is None:
        return _project_page(request, project, 400, sample_form=form)
    f = fields[0]
    messages.success(request, f"{len(fields)} field(s) of {f.width}×{f.height} px sampled on slide "
                              f"{f.slide.pseudo_id}, each with a session for every annotator.")
    return redirect("annotations:project", pk=project.pk)


@role_required(*MANAGER_ROLES)
def project_draw_field(request, pk):
    """Draw one field on a slide: GET ?slide=<pseudo id> opens the viewer; the region is posted here."""
    project = _managed_project(request.user, pk)
    if request.method == "POST":
        form = forms.DrawnFieldForm(request.POST, user=request.user, project=project)
        field = _attempt(request, form, "Field not created", lambda d: services.do_create_field(
            project, d["slide"], d["x"], d["y"], d["width"], d["height"], user=request.user))
        if field is not None:
            names = ", ".join(field.sessions.order_by("annotator__username")
                              .values_list("annotator__username", flat=True)) or "nobody yet"
            messages.success(request, f"Field {field.pk} created on slide {field.slide.pseudo_id}: {field.x},{field.y} "
                                      f"{field.width}×{field.height} px. Sessions for: {names}.")
            return redirect("annotations:project", pk=project.pk)
        slide = form.cleaned_data.get("slide")
    else:
        slide_form = forms.SlideForm(request.GET, user=request.user, project=project)
        slide = _attempt(request, slide_form, "Choose a slide to draw on", lambda d: d["slide"])
        form = forms.DrawnFieldForm(user=request.user, project=project)
    if slide is None:  # the message says why
        return redirect("annotations:project", pk=project.pk)
    return _draw_page(request, project, slide, form, status=400 if request.method == "POST" else 200)


def _draw_page(request, project, slide, form, status=200):
    """Pseudonymous: the slide's pseudo id, size and resolution, and the project's fields on it."""
    config = {
        "dzi": reverse("viewer:pseudo-dzi", args=[slide.pseudo_id]), "size": [slide.width, slide.height],
        "mpp": slide.mpp_x, "fields": [{"id": f.pk, "region": f.region} for f in project.fields.filter(slide=slide)],
    }
    return render(request, "annotations/draw_field.html", {
        "project": project, "slide_pseudo_id": slide.pseudo_id, "slide": slide, "form": form, "config": config,
        "slide_description": services.slide_description(slide, project),
    }, status=status)


@require_POST
@role_required(*MANAGER_ROLES)
def project_train(request, pk):
    """The "train a new model from accepted annotations" button: export + queue (dataset.do_queue_training)."""
    project = _managed_project(request.user, pk)
    try:
        services.check_manages_whole_project(request.user, project)
        queued = dataset.do_queue_training(project, request.POST.get("name"), request.POST.get("steps") or 500,
                                           request.POST.get("backbone") or "resnet18", user=request.user)
    except (services.AnnotationError, services.NotAllowed) as exc:
        messages.error(request, "Training not started. " + _error_text(exc))
    else:
        left = (f" {queued['left_out']} accepted session(s) left out: their slide is stained for another marker "
                f"than the project's." if queued["left_out"] else "")
        messages.success(request, f"Training of model {queued['model_name']!r} queued on the training worker: "
                                  f"{queued['fields']} accepted field(s), {queued['steps']} steps, "
                                  f"{queued['backbone']}. It is registered as a research model version when done."
                                  + left)
    return redirect("annotations:project", pk=project.pk)


@require_POST
@role_required(*MANAGER_ROLES)
def project_training_cancel(request, pk, run_id):
    """Cancel a training run of the project (workers.training.do_cancel_training)."""
    project = _managed_project(request.user, pk)
    run = dataset.training_run(project, run_id)
    if run is None:
        raise Http404("no such training run of this project")
    try:
        services.check_manages_whole_project(request.user, project)
        run = do_cancel_training(run)
    except (TrainingError, services.NotAllowed) as exc:
        messages.error(request, f"Training {run.name} not cancelled: {exc}")
    else:
        messages.success(request, f"Training {run.name}: {run.state_label.lower()}. Nothing will be registered.")
    return redirect("annotations:project", pk=project.pk)


def _reviewable_field(user, pk):
    field = get_object_or_404(services.visible_fields(user).select_related("slide", "project"), pk=pk)
    if not services.can_manage(user, field.project):
        raise Http404("no such field that you review")
    return field


@role_required(*MANAGER_ROLES)
def field_review(request, pk):
    field = _reviewable_field(request.user, pk)
    try:
        context = services.field_review(field, request.user)
    except services.NotAllowed as exc:  # their own session of the field is open: back to it, saying why
        messages.error(request, f"Review of field {field.pk} not shown: {exc}.")
        own = field.sessions.get(annotator=request.user)
        return redirect("annotations:session", pk=own.pk)
    context["config"]["dzi"] = reverse("viewer:pseudo-dzi", args=[field.slide.pseudo_id])
    context["config"]["labels"] = context["labels"] = choices.shown_labels(field.project.labels)
    context["slide_description"] = services.slide_description(field.slide, field.project)
    return render(request, "annotations/review.html", context)


@require_POST
@role_required(*MANAGER_ROLES)
def session_review(request, pk):
    """Accept or return (with a comment) one submitted session, from the field's review page."""
    session = get_object_or_404(services.visible_sessions(request.user).select_related("field__project", "annotator"),
                                pk=pk)
    action, comment = request.POST.get("action"), request.POST.get("comment", "")
    version = request.POST.get("version", "")
    try:
        # The version the review page showed (required, as on the API): a session resubmitted since is not
        # accepted unseen.
        version = int(version)
    except ValueError:
        version = -1  # matches no session: refused with the message below
    try:
        if action == "accept":
            services.do_accept(session, request.user, comment, version)
        elif action == "return":
            services.do_return(session, request.user, comment, version)
        else:
            raise TransitionError(f"unknown review action {action!r} (accept or return)")
    except (TransitionError, services.NotAllowed, services.AnnotationError) as exc:  # accept re-checks the points
        messages.error(request, f"Session {session.pk} of {session.annotator.username} not changed: "
                                f"{_error_text(exc)}")
    else:
        done = "accepted" if action == "accept" else "returned to the annotator"
        messages.success(request, f"Session {session.pk} of {session.annotator.username} {done}.")
    return redirect("annotations:field-review", pk=session.field_id)
