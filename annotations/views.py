"""Annotation pages: the annotator's sessions, the point-annotation page, and the reviewer's
project and field pages (review of every annotator's points, accept/return, training).

Pseudonymous only: the pages show the slide's pseudo id, the field's level-0 region and the
project's label set - never a patient, case, accession or file name.  Points are read and saved
through the REST API (`/api/annotation/sessions/{id}/points/`), with its version (409 on stale).
Reviewer actions are HTML forms posting to thin views over annotations.services.
"""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from analysis.nets import BACKBONES
from annotations import dataset, services
from annotations.models import TransitionError
from cases.choices import Role
from cases.views import role_required

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
    sessions = list(own_sessions(request.user).order_by("field__project__name", "field_id")[:500])
    return render(request, "annotations/session_list.html", {"sessions": sessions})


@role_required(*ANNOTATION_ROLES)
def session_page(request, pk):
    """The annotator edits their own session; a project's reviewer sees any of its sessions read-only."""
    session = get_object_or_404(
        services.visible_sessions(request.user).select_related("field__slide", "field__project", "annotator"), pk=pk)
    own = session.annotator_id == request.user.pk
    field, project = session.field, session.field.project
    config = {
        "session": session.pk,
        "field": field.region,
        "labels": [{"name": lab["name"], "title": lab.get("title", lab["name"]), "colour": lab.get("colour", "#888888")}
                   for lab in project.labels],
        "dzi": reverse("viewer:pseudo-dzi", args=[field.slide.pseudo_id]),
        "points": reverse("api:annotation-session-points", args=[session.pk]),
        "submit": reverse("api:annotation-session-submit", args=[session.pk]),
        "own": own,
        "editable": own and session.editable,
        "status": session.status,
    }
    return render(request, "annotations/session.html", {
        "session": session, "field": field, "project": project, "slide_pseudo_id": field.slide.pseudo_id,
        "config": config, "own": own, "can_review": services.can_manage(request.user, project),
    })


# ----------------------------------------------------------------------------
# Reviewer pages (the project's pathologists and administrators)
# ----------------------------------------------------------------------------


@role_required(*MANAGER_ROLES)
def project_list(request):
    projects = services.managed_projects(request.user).order_by("-created_at")[:200]
    return render(request, "annotations/project_list.html", {
        "projects": [(p, services.project_progress(p)) for p in projects]})


def _managed_project(user, pk):
    return get_object_or_404(services.managed_projects(user), pk=pk)


@role_required(*MANAGER_ROLES)
def project_page(request, pk):
    project = _managed_project(request.user, pk)
    fields = project.fields.select_related("slide").prefetch_related("sessions__annotator").order_by("pk")
    return render(request, "annotations/project.html", {
        "project": project, "fields": fields, "progress": services.project_progress(project),
        "trainings": dataset.training_runs(project), "backbones": BACKBONES,
        "annotators": project.annotators.order_by("username"),
    })


@require_POST
@role_required(*MANAGER_ROLES)
def project_train(request, pk):
    """The "train a new model from accepted annotations" button: export + queue (dataset.do_queue_training)."""
    project = _managed_project(request.user, pk)
    try:
        queued = dataset.do_queue_training(project, request.POST.get("name"), request.POST.get("steps") or 500,
                                           request.POST.get("backbone") or "resnet18")
    except services.AnnotationError as exc:
        messages.error(request, "Training not started. " + _error_text(exc))
    else:
        messages.success(request, f"Training of model {queued['model_name']!r} queued on a worker: "
                                  f"{queued['fields']} accepted field(s), {queued['steps']} steps, "
                                  f"{queued['backbone']}. It is registered as a model version when done.")
    return redirect("annotations:project", pk=project.pk)


def _reviewable_field(user, pk):
    field = get_object_or_404(services.visible_fields(user).select_related("slide", "project"), pk=pk)
    if not services.can_manage(user, field.project):
        raise Http404("no such field that you review")
    return field


@role_required(*MANAGER_ROLES)
def field_review(request, pk):
    field = _reviewable_field(request.user, pk)
    context = services.field_review(field, request.user)
    context["config"]["dzi"] = reverse("viewer:pseudo-dzi", args=[field.slide.pseudo_id])
    return render(request, "annotations/review.html", context)


@require_POST
@role_required(*MANAGER_ROLES)
def session_review(request, pk):
    """Accept or return (with a comment) one submitted session, from the field's review page."""
    session = get_object_or_404(services.visible_sessions(request.user).select_related("field__project", "annotator"),
                                pk=pk)
    action, comment = request.POST.get("action"), request.POST.get("comment", "")
    try:
        if action == "accept":
            services.do_accept(session, request.user, comment)
        elif action == "return":
            services.do_return(session, request.user, comment)
        else:
            raise TransitionError(f"unknown review action {action!r} (accept or return)")
    except (TransitionError, services.NotAllowed) as exc:
        messages.error(request, f"Session {session.pk} of {session.annotator.username} not changed: {exc}")
    else:
        done = "accepted" if action == "accept" else "returned to the annotator"
        messages.success(request, f"Session {session.pk} of {session.annotator.username} {done}.")
    return redirect("annotations:field-review", pk=session.field_id)
