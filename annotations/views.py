"""Annotator pages: the list of one's sessions and the point-annotation page of one session.

Pseudonymous only: the pages show the slide's pseudo id, the field's level-0 region and the
project's label set - never a patient, case, accession or file name.  Points are read and saved
through the REST API (`/api/annotation/sessions/{id}/points/`), with its version (409 on stale).
"""

from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from annotations import services
from cases.choices import Role
from cases.views import role_required

ANNOTATION_ROLES = (Role.ADMIN, Role.PATHOLOGIST, Role.ANNOTATOR)


def own_sessions(user):
    """The user's own sessions on slides they may still see (pseudonymously)."""
    return services.visible_sessions(user).filter(annotator=user).select_related("field__slide", "field__project")


@role_required(*ANNOTATION_ROLES)
def session_list(request):
    sessions = list(own_sessions(request.user).order_by("field__project__name", "field_id")[:500])
    return render(request, "annotations/session_list.html", {"sessions": sessions})


@role_required(*ANNOTATION_ROLES)
def session_page(request, pk):
    session = get_object_or_404(own_sessions(request.user), pk=pk)
    field, project = session.field, session.field.project
    config = {
        "session": session.pk,
        "field": field.region,
        "labels": [{"name": lab["name"], "title": lab.get("title", lab["name"]), "colour": lab.get("colour", "#888888")}
                   for lab in project.labels],
        "dzi": reverse("viewer:pseudo-dzi", args=[field.slide.pseudo_id]),
        "points": reverse("api:annotation-session-points", args=[session.pk]),
        "submit": reverse("api:annotation-session-submit", args=[session.pk]),
        "editable": session.editable,
        "status": session.status,
    }
    return render(request, "annotations/session.html", {
        "session": session, "field": field, "project": project, "slide_pseudo_id": field.slide.pseudo_id,
        "config": config,
    })
