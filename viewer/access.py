"""Who sees which slide and job in the viewer, and what the viewer page needs of a slide."""

from __future__ import annotations

from analysis.choices import FINAL_JOB_STATUSES, JobStatus
from analysis.models import AnalysisJob
from cases import access
from cases.choices import Role

VIEWER_ROLES = (Role.ADMIN, Role.PATHOLOGIST)
PSEUDO_ROLES = (Role.ADMIN, Role.PATHOLOGIST, Role.ANNOTATOR)


def check_may_view_slides(user) -> bool:
    """Slides with their clinical identity (tiles by id, overlay, corrections): admins, pathologists."""
    return access.has_role(user, *VIEWER_ROLES)


def check_may_view_pseudonymous(user) -> bool:
    return access.has_role(user, *PSEUDO_ROLES)


def viewable_slides(user):
    return access.visible_slides(user)


def pseudonymous_slides(user):
    return access.pseudonymous_slides(user)


def viewable_jobs(user):
    return AnalysisJob.objects.filter(slide__in=access.visible_slides(user)).select_related("slide__case")


def latest_jobs(slide) -> tuple[AnalysisJob | None, AnalysisJob | None]:
    """(latest done job, latest unfinished job) of a slide."""
    jobs = AnalysisJob.objects.filter(slide=slide).order_by("-created_at", "-pk")
    done = jobs.filter(status=JobStatus.DONE).first()
    running = jobs.exclude(status__in=FINAL_JOB_STATUSES).first()
    return done, running


def slide_info(slide, dzi_url: str) -> dict:
    from viewer.tiles import max_zoom_ratio

    return {"width": slide.width, "height": slide.height, "mpp_x": slide.mpp_x, "mpp_y": slide.mpp_y,
            "objective_power": slide.objective_power, "dzi_url": dzi_url,
            "max_zoom_ratio": max_zoom_ratio(slide.mpp_x)}
