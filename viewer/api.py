"""REST API of the viewer: overlay points, density, job state, corrections. Thin: logic in the viewer's modules
(access, overlay, corrections, regions, hotspots, export, eta).

Routes (registered as "viewer/jobs" in pdl1site/api.py):
    GET  /api/viewer/jobs/<id>/points/?x0=&y0=&x1=&y1=&max=&layers=
    GET  /api/viewer/jobs/<id>/points/<point id>/
    GET  /api/viewer/jobs/<id>/density/?grid_px=
    GET  /api/viewer/jobs/<id>/state/
    GET  /api/viewer/jobs/<id>/corrections/
    POST /api/viewer/jobs/<id>/corrections/
    GET  /api/viewer/jobs/<id>/corrections/export/?format=csv|geojson
    GET  /api/viewer/jobs/<id>/regions/[?all=1]
    POST /api/viewer/jobs/<id>/regions/           {base_version, kind, vertices[, replaces]}
    DELETE /api/viewer/jobs/<id>/regions/<rid>/   {base_version} (or ?base_version=)
    GET  /api/viewer/jobs/<id>/hotspots/?field_mm2=&min_cells=
"""


from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from cases.audit import log_access
from cases.permissions import CLINICAL_ROLES, HasRole
from viewer.access import viewable_jobs
from viewer.corrections import corrections_overview, do_add_correction
from viewer.eta import job_state_with_eta
from viewer.export import export_annotations
from viewer.hotspots import job_hotspots
from viewer.human_layer import correction_state, job_regions, read_at_one_version
from viewer.overlay import corrected_density, point_detail, viewport
from viewer.params import (
    GridParams,
    HotspotParams,
    RegionInput,
    ViewportParams,
    check_export_format,
    check_grid_px,
    check_hotspot_params,
    check_viewport_params,
)
from viewer.regions import do_add_region, do_delete_region, regions_overview
from viewer.stores import job_mpp, job_store


class _FileRenderer(BaseRenderer):
    """Lets ?format=csv|geojson through content negotiation; the view returns the bytes itself."""

    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else JSONRenderer().render(data)


class FastJSONRenderer(BaseRenderer):
    """JSON by orjson, numpy arrays included: the viewport of ~10k points encodes in ~1 ms instead of
    the ~30 ms of ndarray.tolist() + json.dumps (bench/RESULTS-viewer.md)."""

    media_type, format, charset = "application/json", "json", None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        import orjson

        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)


class CSVRenderer(_FileRenderer):
    media_type, format = "text/csv", "csv"


class GeoJSONRenderer(_FileRenderer):
    media_type, format = "application/geo+json", "geojson"


class ViewerJobViewSet(viewsets.GenericViewSet):
    permission_classes = [HasRole]
    allowed_roles = CLINICAL_ROLES
    lookup_value_regex = r"\d+"
    pagination_class = None
    filter_backends = []

    def get_queryset(self):
        return viewable_jobs(self.request.user)

    @extend_schema(parameters=[ViewportParams], responses=dict)
    @action(detail=True, methods=["get"], renderer_classes=[FastJSONRenderer])
    def points(self, request, pk=None):
        """Corrected detections in a level-0 box, thinned evenly to `max`; `total` counts all in the box."""
        job = self.get_object()
        params = check_viewport_params(request.query_params)
        store = job_store(job)
        state = correction_state(job)
        return Response(viewport(store, state, params["x0"], params["y0"], params["x1"], params["y1"],
                                          params["max_points"], params["layers"], as_arrays=True))

    # Its own operationId: derived from the path it would be points' (GET points/) too, which
    # drf-spectacular could only tell apart by numeral suffixes that follow the order of the routes.
    @extend_schema(operation_id="viewer_jobs_point_retrieve", responses=dict)
    @action(detail=True, methods=["get"], url_path=r"points/(?P<point_id>c?\d+)")
    def point(self, request, pk=None, point_id=None):
        job = self.get_object()
        store = job_store(job)
        found = point_detail(store, correction_state(job), point_id)
        if found is None:
            return Response({"detail": f"no point {point_id} in the corrected result"},
                            status=status.HTTP_404_NOT_FOUND)
        return Response(found)

    @extend_schema(parameters=[GridParams], responses=dict)
    @action(detail=True, methods=["get"])
    def density(self, request, pk=None):
        job = self.get_object()
        store = job_store(job)
        grid_px = check_grid_px(request.query_params, store)
        return Response(corrected_density(store, correction_state(job), grid_px))

    @extend_schema(responses=dict)
    @action(detail=True, methods=["get"])
    def state(self, request, pk=None):
        """The job's progress (as in websocket messages) with eta_s: the polling fallback."""
        return Response(job_state_with_eta(self.get_object()))

    @extend_schema(request=dict, responses=dict)
    @action(detail=True, methods=["get", "post"])
    def corrections(self, request, pk=None):
        job = self.get_object()
        if request.method == "GET":
            return Response(corrections_overview(job))
        result = do_add_correction(job, request.user, request.data)
        return Response(result, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["csv", "geojson"])],
                   responses={(200, "text/csv"): bytes, (200, "application/geo+json"): bytes})
    @action(detail=True, methods=["get"], url_path="corrections/export",
            renderer_classes=[JSONRenderer, CSVRenderer, GeoJSONRenderer])
    def export(self, request, pk=None):
        """Training annotations: the full corrected point set (model output + corrections)."""
        job = self.get_object()
        fmt = check_export_format(request.query_params)
        store = job_store(job)
        log_access(job.slide)
        version, (state, regions) = read_at_one_version(job, lambda: (correction_state(job), job_regions(job)))
        meta = {"job": job.pk, "slide_sha256": job.slide.sha256, "mpp": job_mpp(job, store),
                "corrections_version": version}
        body, content_type = export_annotations(store, state, fmt, meta, regions)
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="job-{job.pk}-corrected.{fmt}"'
        return response

    @extend_schema(request=RegionInput, responses=dict)
    @action(detail=True, methods=["get", "post"])
    def regions(self, request, pk=None):
        """Drawn include/exclude regions; GET ?all=1 lists deleted ones too (history). POST with `replaces`
        (a region id) replaces that region in the same save (an edit of its vertices)."""
        job = self.get_object()
        if request.method == "GET":
            return Response(regions_overview(job, request.query_params.get("all") in ("1", "true")))
        result = do_add_region(job, request.user, request.data)
        return Response(result, status=status.HTTP_201_CREATED)

    @extend_schema(request=dict, responses=dict)
    @action(detail=True, methods=["delete"], url_path=r"regions/(?P<region_id>\d+)")
    def region(self, request, pk=None, region_id=None):
        """Soft-delete a region (it stays in the history); base_version in the body or the query."""
        job = self.get_object()
        data = request.data if isinstance(request.data, dict) and "base_version" in request.data \
            else {"base_version": request.query_params.get("base_version")}
        return Response(do_delete_region(job, request.user, int(region_id), data))

    @extend_schema(parameters=[HotspotParams], responses=dict)
    @action(detail=True, methods=["get"])
    def hotspots(self, request, pk=None):
        """TPS per field (default 1 mm²) of the corrected points inside the regions; null where a field
        has fewer than min_cells tumour cells; "top" is the field with the highest TPS."""
        job = self.get_object()
        params = check_hotspot_params(request.query_params)
        return Response(job_hotspots(job, params["field_mm2"], params["min_cells"]))
