"""The viewer API's OpenAPI schema: the overlay points of a job (GET points/) and one point's detail
(GET points/<point id>/) used to get the same operationId from their paths, which drf-spectacular only
resolved with numeral suffixes and a warning (a generated client's method names then hung on the order of
the routes). Each operation now has an id of its own and the schema generates without that warning."""

from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

POINTS = "/api/viewer/jobs/{id}/points/"
POINT = "/api/viewer/jobs/{id}/points/{point_id}/"


def generate(monkeypatch):
    """The public schema and the warnings and errors drf-spectacular emitted while generating it."""
    emitted = []
    monkeypatch.setattr(GENERATOR_STATS, "emit", lambda msg, severity: emitted.append((severity, str(msg))))
    return SchemaGenerator().get_schema(request=None, public=True), emitted


def test_the_points_endpoints_have_operation_ids_of_their_own(monkeypatch):
    schema, emitted = generate(monkeypatch)
    assert schema["paths"][POINTS]["get"]["operationId"] == "viewer_jobs_points_retrieve"
    assert schema["paths"][POINT]["get"]["operationId"] == "viewer_jobs_point_retrieve"
    collisions = [msg for _, msg in emitted if "operationId" in msg]
    assert collisions == [], collisions


def test_no_operation_id_is_used_twice(monkeypatch):
    schema, emitted = generate(monkeypatch)
    ids = [op["operationId"] for ops in schema["paths"].values() for op in ops.values()
           if isinstance(op, dict) and "operationId" in op]
    assert len(ids) > 40  # the schema was generated, not an empty document
    assert sorted({i for i in ids if ids.count(i) > 1}) == []
    viewer = [msg for _, msg in emitted if "/api/viewer/" in msg or "ViewerJobViewSet" in msg]
    assert viewer == [], viewer
