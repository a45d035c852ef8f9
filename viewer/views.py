"""DeepZoom descriptor, tiles and slide info, by slide id (pathologists) or pseudonymous id (annotators).

Thin: tiles in viewer.tiles, access in viewer.access, ETags in viewer.etags. Anonymous users are
redirected to the login page; a role that may not see such slides gets 403; a slide the user may
not see is 404, like one that does not exist.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseNotModified, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from cases.audit import log_access
from viewer import access, etags, fastpath, tiles
from workers.services import detector_choices

TILE_CACHE_CONTROL = fastpath.TILE_CACHE_CONTROL.decode()


def _slide_view(pseudonymous=False):
    """Decorator: resolve `pk` (or `pseudo_id`) to a slide the user may see, passed as `slide`."""

    def decorator(view):
        @wraps(view)
        @login_required
        @require_safe
        def wrapper(request, pk=None, pseudo_id=None, **kwargs):
            if pseudonymous:
                if not access.check_may_view_pseudonymous(request.user):
                    raise PermissionDenied("Your role does not give access to slides.")
                slide = get_object_or_404(access.pseudonymous_slides(request.user), pseudo_id=pseudo_id)
            else:
                if not access.check_may_view_slides(request.user):
                    raise PermissionDenied("Your role does not give access to identified slides.")
                slide = get_object_or_404(access.viewable_slides(request.user), pk=pk)
            return view(request, slide, pseudonymous=pseudonymous, **kwargs)

        return wrapper

    return decorator


def _tile_errors(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except tiles.TileError as exc:
            raise Http404(str(exc)) from None

    return wrapper


def _dzi_url(slide, pseudonymous):
    if pseudonymous:
        return reverse("viewer:pseudo-dzi", args=[slide.pseudo_id])
    return reverse("viewer:slide-dzi", args=[slide.pk])


def _dzi(request, slide, pseudonymous=False):
    if not pseudonymous:
        log_access(slide)
    return HttpResponse(tiles.dzi_xml(slide.path), content_type="application/xml")


def _tile(request, slide, level, col, row, pseudonymous=False):
    # The access decision just made, for fastpath to replay on this session's next tiles of this slide.
    fastpath.grants.remember(request.session.session_key, "pseudo" if pseudonymous else "slides",
                             slide.pseudo_id if pseudonymous else slide.pk, slide.path,
                             etags.tile_etag_prefix(slide))
    etag = etags.tile_etag(slide, level, col, row)
    if etags.etag_matches(request.headers.get("If-None-Match"), etag):
        response = HttpResponseNotModified()
    else:
        try:
            data = tiles.tile_jpeg(slide.path, level, col, row)
        except tiles.TileNotFound as exc:
            raise Http404(str(exc)) from None
        response = HttpResponse(data, content_type="image/jpeg")
    response["ETag"] = etag
    response["Cache-Control"] = TILE_CACHE_CONTROL
    return response


def _info(request, slide, pseudonymous=False):
    if not pseudonymous:
        log_access(slide)
    return JsonResponse(access.slide_info(slide, _dzi_url(slide, pseudonymous)))


slide_dzi = _slide_view()(_tile_errors(_dzi))
slide_tile = _slide_view()(_tile_errors(_tile))
slide_info = _slide_view()(_info)
pseudo_dzi = _slide_view(pseudonymous=True)(_tile_errors(_dzi))
pseudo_tile = _slide_view(pseudonymous=True)(_tile_errors(_tile))
pseudo_info = _slide_view(pseudonymous=True)(_info)


@login_required
def slide_viewer(request, pk):
    """The viewer page (template by the frontend): slide, its latest done and running jobs."""
    if not access.check_may_view_slides(request.user):
        raise PermissionDenied("Your role does not give access to identified slides.")
    slide = get_object_or_404(access.viewable_slides(request.user).select_related("case"), pk=pk)
    log_access(slide)
    job, running_job = access.latest_jobs(slide)
    return render(request, "viewer/slide_viewer.html", {
        "slide": slide, "case": slide.case, "job": job, "running_job": running_job,
        "detectors": detector_choices(slide),
    })
