"""Every route and method of the URL conf and the OpenAPI schema has a declared answer per persona.

tests/pdl1site/permission_matrix.py declares, for each (URL name, method), the one status each
persona gets. The completeness tests walk the URL conf and the schema, so a new endpoint (or a new
method on one) without an entry fails the suite; the exercise test sends every entry's request as
every persona and asserts exactly the declared status (no "403 or 404").

Requests that change things run inside a savepoint that is rolled back, so every persona meets the
same world (a report signed by one is still a draft for the next).
"""

import inspect
import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from drf_spectacular.generators import SchemaGenerator
from tests.pdl1site import permission_matrix as pm
from tests.pdl1site.world import build_world

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def url_patterns(patterns=None, namespace=""):
    """(qualified name, callback) of every URL pattern of the URL conf, the admin site apart (one
    rule for all of it: test_admin_site_is_for_staff_only)."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == admin.site.name:
                continue
            inner = ":".join(filter(None, [namespace, pattern.namespace])) if pattern.namespace else namespace
            yield from url_patterns(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            assert pattern.name, f"an unnamed route cannot be declared in the matrix: {pattern}"
            yield ":".join(filter(None, [namespace, pattern.name])), pattern.callback


def _closure_methods(function):
    """The method list of a require_http_methods/require_POST/require_safe wrapper, if any."""
    while function is not None:
        for cell in function.__closure__ or ():
            value = cell.cell_contents
            if isinstance(value, (list, tuple)) and value and all(isinstance(m, str) and m.isupper() for m in value):
                return {m for m in value if m in METHODS}
        function = getattr(function, "__wrapped__", None)
    return None


def served_methods(callback) -> set[str]:
    """The methods a view answers (OPTIONS and HEAD aside: every view answers them alike)."""
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if getattr(callback, "actions", None):  # a DRF viewset route
        allowed = {m.upper() for m in cls.http_method_names}
        return {m.upper() for m in callback.actions} & allowed & set(METHODS)
    if cls is not None:  # a class-based view
        names = getattr(callback, "initkwargs", {}).get("http_method_names") or cls.http_method_names
        return {m.upper() for m in names if hasattr(cls, m)} & set(METHODS)
    declared = _closure_methods(callback)
    if declared is not None:
        return declared
    # A plain function view answers any method; it serves POST where it reads a form.
    source = inspect.getsource(inspect.unwrap(callback))
    return {"GET", "POST"} if "request.POST" in source or '"POST"' in source else {"GET"}


def routes():
    """{(name, method)} the URL conf serves."""
    return {(name, method) for name, callback in url_patterns() for method in served_methods(callback)}


def schema_operations():
    """{(URL name, method)} of every operation of the OpenAPI schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = set()
    for path, operations in schema["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        match = resolve(concrete)
        for method in operations:
            if method.upper() in METHODS:
                found.add((f"{':'.join(match.namespaces)}:{match.url_name}", method.upper()))
    return found


def test_every_route_and_method_has_an_entry():
    missing = sorted(routes() - set(pm.MATRIX))
    assert missing == [], f"add these to tests/pdl1site/permission_matrix.py: {missing}"


def test_every_entry_is_a_route():
    stale = sorted(set(pm.MATRIX) - routes())
    assert stale == [], f"no longer served, remove from permission_matrix.py: {stale}"


def test_every_schema_operation_has_an_entry():
    operations = schema_operations()
    assert len(operations) > 40  # the schema was generated, not an empty document
    missing = sorted(operations - set(pm.MATRIX))
    assert missing == [], f"schema operations without a permission entry: {missing}"


def test_every_entry_declares_every_persona():
    for key, row in pm.MATRIX.items():
        assert set(row) == set(pm.PERSONAS), key
        assert all(answer in pm.ANSWERS for answer in row.values()), key


def test_every_entry_has_a_request():
    assert set(pm.MATRIX) <= set(REQUESTS), sorted(set(pm.MATRIX) - set(REQUESTS))


def test_discovery_finds_what_views_declare():
    """served_methods reads decorators, DRF actions and forms right (the completeness tests rely on it)."""
    by_name = dict(url_patterns())
    assert served_methods(by_name["annotations:project-train"]) == {"POST"}  # require_POST
    assert served_methods(by_name["viewer:slide-tile"]) == {"GET"}  # require_safe
    assert served_methods(by_name["cases:case-create"]) == {"GET", "POST"}  # reads a form
    assert served_methods(by_name["api:slide-detail"]) == {"GET", "PATCH"}  # http_method_names drops PUT
    assert served_methods(by_name["api:swagger-ui"]) == {"GET"}


# --- the world every persona meets -------------------------------------------------------------

@pytest.fixture
def world(personas, media_root):
    return build_world(personas, media_root)


def _client(world, persona):
    client = Client()
    if persona != "anonymous":
        client.force_login(world[persona])
    return client


# Each entry's request: (URL kwargs, body) from the world. Bodies of writes are empty or invalid
# unless the entry needs more: the answer shows whether the persona passed the gate (400: the gate
# let the request through to validation) without depending on what another persona did.
def _pk(key):
    return lambda w: {"pk": w[key].pk}


REQUESTS = {}


def request(names, methods, kwargs=None, body=None):
    for name in names.split():
        for method in methods.split():
            REQUESTS[(name, method)] = (kwargs or (lambda w: {}), body)


request("login", "GET POST PUT", body={})
request("logout", "POST")
request("api:api-root api:schema api:swagger-ui", "GET")
request("api:token", "POST", body={})
request("api:integration-fhir-servicerequest", "POST", body={})
request("api:integration-inbound-list api:integration-outbox-list", "GET")
for _basename in ("patient", "case"):
    request(f"api:{_basename}-list", "GET POST", body={})
request("api:patient-detail", "GET PUT PATCH", lambda w: {"pk": w["case"].patient.pk}, body={})
request("api:case-detail", "GET PUT PATCH", _pk("case"), body={})
request("api:slide-list", "GET POST", body={})
request("api:slide-detail api:slide-thumbnail", "GET PATCH", _pk("slide"), body={})
request("api:slide-mpp", "POST", _pk("slide"), body={"mpp_x": "not a number"})
request("api:pseudo-slide-list", "GET")
request("api:pseudo-slide-detail api:pseudo-slide-thumbnail", "GET", lambda w: {"pseudo_id": w["slide"].pseudo_id})
request("api:report-list", "GET POST", body={})
request("api:report-detail api:report-fhir api:report-pdf", "GET", _pk("signed"))
request("api:report-sign", "POST", _pk("draft"), body={"password": "wrong-password"})
request("api:report-amend", "POST", _pk("signed"), body={"reason": "matrix"})
request("api:report-comment", "POST", _pk("draft"), body={"comment": "matrix"})
request("api:job-list", "GET POST", body={})
request("api:job-detail", "GET", _pk("job"))
request("api:job-cancel api:job-retry", "POST", _pk("job"), body={})
request("api:viewer-job-corrections api:viewer-job-regions", "GET POST", _pk("job"), body={})
request("api:viewer-job-density api:viewer-job-export api:viewer-job-hotspots api:viewer-job-state", "GET",
        _pk("job"))
request("api:viewer-job-points", "GET", _pk("job"), body={"x0": 0, "y0": 0, "x1": 1000, "y1": 1000})  # query
request("api:viewer-job-point", "GET", lambda w: {"pk": w["job"].pk, "point_id": "0"})
request("api:viewer-job-region", "DELETE", lambda w: {"pk": w["job"].pk, "region_id": w["region"]["id"]},
        body={"base_version": 0})
request("api:annotation-project-list", "GET POST", body={})
request("api:annotation-project-detail", "GET", _pk("project"))
request("api:annotation-project-annotators api:annotation-project-export-dataset "
        "api:annotation-project-train-model", "POST", _pk("project"), body={})
request("api:annotation-field-list", "GET")
REQUESTS[("api:annotation-field-list", "POST")] = (lambda w: {}, lambda w: {
    "project": w["project"].pk, "slide": str(w["slide"].pseudo_id), "x": 0, "y": 0, "width": 8, "height": 8})
request("api:annotation-field-detail api:annotation-field-agreement api:annotation-field-consensus", "GET",
        _pk("field"))
request("api:annotation-session-list", "GET")
request("api:annotation-session-detail api:annotation-session-export-points", "GET", _pk("session"))
request("api:annotation-session-points", "GET PUT", _pk("session"), body={})
request("api:annotation-session-import-points", "POST", _pk("session"), body={})
# Submit, accept and return carry the version the user saw (a stale one is 409, nothing changes).
request("api:annotation-session-submit api:annotation-session-accept api:annotation-session-return-", "POST",
        _pk("session"), body={"version": 0})
_slide = lambda w: {"pk": w["slide"].pk}  # noqa: E731
_pseudo = lambda w: {"pseudo_id": w["slide"].pseudo_id}  # noqa: E731
request("workers:slide-jobs", "GET POST", lambda w: {"slide_id": w["slide"].pk}, body={"detector": "/etc/passwd"})
request("workers:job-action", "POST", lambda w: {"pk": w["job"].pk, "action": "cancel"}, body={})
request("viewer:slide-viewer viewer:slide-dzi viewer:slide-info", "GET", _slide)
request("viewer:slide-tile", "GET", lambda w: {"pk": w["slide"].pk, "level": 0, "col": 0, "row": 0})
request("viewer:pseudo-dzi viewer:pseudo-info", "GET", _pseudo)
request("viewer:pseudo-tile", "GET", lambda w: {"pseudo_id": w["slide"].pseudo_id, "level": 0, "col": 0, "row": 0})
request("annotations:session-list", "GET")
request("annotations:project-list", "GET POST", body={})
request("annotations:session", "GET POST", _pk("session"), body={})
request("annotations:session-review", "POST", _pk("session"), body={"action": "none"})
request("annotations:project", "GET", _pk("project"))
request("annotations:project-draw-field", "GET POST", _pk("project"), body={})
request("annotations:project-train annotations:project-annotators annotations:project-sample-fields", "POST",
        _pk("project"), body={})
request("annotations:field-review", "GET", _pk("field"))
request("api:annotation-project-training-runs", "GET", _pk("project"))


def _queued_training_run(w):
    """A queued training run of the world's project, made inside each persona's rolled-back request."""
    from annotations.dataset import training_group
    from workers.models import TrainingRun

    run = TrainingRun.objects.create(group=training_group(w["project"]), dataset="none", name="matrix-run",
                                     steps_total=1, backbone="resnet18", mpp=0.5)
    return {"pk": w["project"].pk, "run_id": run.pk}


request("api:annotation-project-cancel-training annotations:project-training-cancel", "POST", _queued_training_run,
        body={})
request("workers:model-list", "GET")


def _a_model(w):
    """A model released for clinical use, made inside each persona's rolled-back request: evaluate and promote
    refuse it at once (302), so the answer depends on who asks. (The shipped starter is research now: a
    reviewer's evaluate would score it.)"""
    from analysis.models import ModelVersion

    version = ModelVersion.objects.create(name="matrix-model", file="models/matrix-model.pt", sha256="0" * 64,
                                          arch="fcn", backbone="resnet18", mpp=0.5, status="clinical")
    return {"pk": version.pk}


request("workers:model-review", "GET", _a_model)
request("workers:model-evaluate workers:model-promote", "POST", _a_model, body={})
request("cases:home cases:case-list cases:patient-list cases:annotator-slides cases:report-list", "GET")
request("cases:case-create cases:patient-create", "GET POST", body={})
request("cases:case-detail cases:case-report", "GET POST", _pk("case"), body={})
request("cases:slide-detail", "GET POST", _slide, body={})
request("cases:slide-thumbnail", "GET", _slide)


def _labelled_slide(w):
    """A slide of the case whose file holds a label (the world's small.svs has none), made inside each
    persona's rolled-back request: the answer then depends on who asks, not on the file."""
    import shutil

    from django.conf import settings

    from tests.conftest import shared_slide
    from tests.viewer import SlideFactory

    target = Path(settings.MEDIA_ROOT) / "labelled.svs"
    if not target.exists():
        shutil.copyfile(shared_slide("CMU-1-Small-Region.svs"), target)
    slide = SlideFactory(case=w["case"], file="labelled.svs", format="aperio",
                         associated_images=["label", "macro", "thumbnail"])
    return {"pk": slide.pk, "name": "label"}


request("cases:slide-associated-image", "GET", _labelled_slide)
request("cases:pseudo-slide-thumbnail", "GET", _pseudo)
request("cases:report-detail", "GET", _pk("signed"))


def send(client, name, method, world):
    kwargs, body = REQUESTS[(name, method)]
    url = reverse(name, kwargs=kwargs(world))
    body = body(world) if callable(body) else body
    call = getattr(client, method.lower())
    if method == "GET":
        return call(url, body)
    if name.startswith("api:"):
        return call(url, body, content_type="application/json")
    if method == "POST":
        return call(url, body)
    return call(url)


def answer_of(response):
    """The answer class of a response: its status, or "login" for a redirect to the login page."""
    location = response.headers.get("Location", "")
    if response.status_code == 302 and location.startswith(("/accounts/login/", "/admin/login/")):
        return pm.LOGIN
    return response.status_code


def observed(world, keys):
    got = {}
    for name, method in keys:
        for persona in pm.PERSONAS:
            client = _client(world, persona)
            with transaction.atomic():  # every persona meets the same world
                got[(name, method, persona)] = answer_of(send(client, name, method, world))
                transaction.set_rollback(True)
    return got


@pytest.mark.django_db
def test_every_entry_answers_as_declared(world):
    got = observed(world, sorted(pm.MATRIX))
    wrong = [f"{name} {method} as {persona}: {status}, declared {pm.MATRIX[(name, method)][persona]}"
             for (name, method, persona), status in sorted(got.items(), key=str)
             if status != pm.MATRIX[(name, method)][persona]]
    assert wrong == [], "\n".join(wrong)


@pytest.mark.django_db
def test_admin_site_is_for_staff_only(world):
    """The Django admin (every registered model's list and add page): staff only; no role reaches it."""
    from tests.factories import make_user

    staff = make_user(None, username="staff")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    urls = ["/admin/"] + [reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist")
                          for m in admin.site._registry]
    assert len(urls) > 5
    for persona in pm.PERSONAS:
        client = _client(world, persona)
        answers = {url: answer_of(client.get(url)) for url in urls}
        assert answers == dict.fromkeys(urls, pm.ADMIN_SITE[persona]), persona
    client = Client()
    client.force_login(staff)
    assert {url: client.get(url).status_code for url in urls} == dict.fromkeys(urls, 200)



@pytest.mark.django_db
def test_unsafe_requests_need_the_csrf_token(world):
    """A signed-in browser session cannot be ridden by another site: pages and the session-
    authenticated API refuse an unsafe request without the CSRF token (403), and take it with one."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["pathologist"])
    comment = reverse("api:report-comment", kwargs={"pk": world["draft"].pk})
    mpp = reverse("cases:slide-detail", kwargs={"pk": world["slide"].pk})
    assert client.post(comment, {"comment": "forged"}, content_type="application/json").status_code == 403
    assert client.post(mpp, {"mpp_x": "0.25"}).status_code == 403
    world["draft"].refresh_from_db()
    assert world["draft"].comment == "draft"
    client.get(reverse("cases:case-list"))  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post(comment, {"comment": "mine"}, content_type="application/json",
                           headers={"X-CSRFToken": token})
    assert response.status_code == 200


def websocket_routes():
    from pdl1site.routing import websocket_urlpatterns

    return [str(pattern.pattern) for pattern in websocket_urlpatterns]


def test_every_websocket_route_has_an_entry():
    assert sorted(websocket_routes()) == sorted(pm.WS_MATRIX)


@pytest.mark.django_db(transaction=True)  # the consumers read the database from another thread
def test_every_websocket_route_answers_as_declared(personas):
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from pdl1site.asgi import application
    from tests.viewer import DoneJobFactory, SlideFactory

    job = DoneJobFactory(slide=SlideFactory(case=personas["case"]))
    paths = {"ws/ping/": "/ws/ping/", "ws/jobs/<int:job_id>/": f"/ws/jobs/{job.pk}/",
             "ws/slides/<int:slide_id>/": f"/ws/slides/{job.slide.pk}/"}
    site = [(b"origin", b"http://localhost"), (b"host", b"localhost")]

    async def answer(path, headers):
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return pm.ACCEPT if connected else code

    got = {}
    for persona in pm.PERSONAS:
        headers = list(site)
        if persona != "anonymous":
            web = Client()
            web.force_login(personas[persona])
            headers.append((b"cookie", f"sessionid={web.cookies['sessionid'].value}".encode()))
        for route in pm.WS_MATRIX:
            got[(route, persona)] = async_to_sync(answer)(paths[route], headers)
    assert got == {(route, p): pm.WS_MATRIX[route][p] for route in pm.WS_MATRIX for p in pm.PERSONAS}
