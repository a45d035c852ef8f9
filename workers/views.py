"""Analysis jobs of a slide, with start, cancel and retry. Thin: logic in workers.services."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from analysis.models import AnalysisJob
from cases import access
from cases.choices import Role
from cases.views import role_required
from workers.services import JobError, detector_choices, do_cancel_job, do_retry_job, do_start_job

clinical = role_required(Role.ADMIN, Role.PATHOLOGIST)


@clinical
def slide_jobs(request, slide_id):
    slide = get_object_or_404(access.visible_slides(request.user), pk=slide_id)
    if request.method == "POST":
        try:
            do_start_job(slide, user=request.user, detector=request.POST.get("detector") or None)
        except JobError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Analysis queued.")
        return redirect("workers:slide-jobs", slide_id=slide.pk)
    jobs = list(AnalysisJob.objects.filter(slide=slide).select_related("model_version"))
    return render(request, "workers/slide_jobs.html", {"slide": slide, "jobs": jobs,
                                                       "running": any(not job.is_final for job in jobs),
                                                       "detectors": detector_choices(slide)})


@clinical
@require_POST
def job_action(request, pk, action):
    job = get_object_or_404(AnalysisJob.objects.filter(slide__in=access.visible_slides(request.user)), pk=pk)
    services = {"cancel": do_cancel_job, "retry": do_retry_job}
    if action not in services:
        raise Http404("unknown action")
    try:
        services[action](job)
    except JobError as exc:
        messages.error(request, str(exc))
    return redirect("workers:slide-jobs", slide_id=job.slide_id)
