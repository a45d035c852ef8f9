"""Who gets what: the declared answer of every (URL name, method) per persona.

tests/pdl1site/test_permission_matrix.py fails when a route or schema operation has no entry here,
and sends every entry's request as every persona, expecting exactly the answer declared.

Personas (tests/conftest.py `personas`), around one case of department A:
  pathologist  pathologist of department A (the case's department)
  outsider     pathologist of department B
  annotator    annotator of department A (pseudonymous slides only, never identity)
  clinician    clinician treating the case's patient (signed reports only)
  admin        holder of the admin role (not Django staff: the admin site is separate)
  norole       signed in, member of department A, no role
  anonymous    not signed in
Answers: an HTTP status, or LOGIN (a redirect to the login page). Most writes are sent with an
empty or invalid body, so that none does real work (start a job, sign): 400 or 409 then means the
persona passed the access gate and reached validation or the state check. Where a view validates
the body before it looks the object up (report amend and comment, field creation), the body is
valid, so that the lookup decides. 403 is a role refusal, 404 an object outside the persona's
departments (its existence is not disclosed), 401 the API without credentials. Requests: REQUESTS
in the test module. Reports are authored, signed and amended by pathologists only (admin: 403).
"""

PERSONAS = ("pathologist", "outsider", "annotator", "clinician", "admin", "norole", "anonymous")
LOGIN = "login"
ANSWERS = {200, 201, 202, 204, 302, 400, 401, 403, 404, 405, 409, 429, LOGIN}


def row(*answers):
    assert len(answers) == len(PERSONAS)
    return dict(zip(PERSONAS, answers))


# The Django admin site: staff only (no role, not even admin, makes a user staff).
ADMIN_SITE = row(LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN)

MATRIX = {
    #                                                   path.  outsider annot. clinic. admin norole anonymous
    # Annotation pages.
    ("annotations:field-review", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("annotations:project", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("annotations:project-annotators", "POST"): row(400, 404, 403, 403, 400, 403, LOGIN),
    ("annotations:project-draw-field", "GET"): row(302, 404, 403, 403, 302, 403, LOGIN),
    ("annotations:project-draw-field", "POST"): row(302, 404, 403, 403, 302, 403, LOGIN),
    ("annotations:project-list", "GET"): row(200, 200, 403, 403, 200, 403, LOGIN),
    ("annotations:project-list", "POST"): row(400, 400, 403, 403, 400, 403, LOGIN),
    ("annotations:project-sample-fields", "POST"): row(400, 404, 403, 403, 400, 403, LOGIN),
    ("annotations:project-train", "POST"): row(302, 404, 403, 403, 302, 403, LOGIN),
    ("annotations:project-training-cancel", "POST"): row(302, 404, 403, 403, 302, 403, LOGIN),
    # Model promotion pages: models are lab-wide, so every pathologist and admin reviews them.
    ("workers:model-list", "GET"): row(200, 200, 403, 403, 200, 403, LOGIN),
    ("workers:model-review", "GET"): row(200, 200, 403, 403, 200, 403, LOGIN),
    ("workers:model-evaluate", "POST"): row(302, 302, 403, 403, 302, 403, LOGIN),
    ("workers:model-promote", "POST"): row(302, 302, 403, 403, 302, 403, LOGIN),
    ("annotations:session", "GET"): row(200, 404, 200, 403, 200, 403, LOGIN),
    ("annotations:session-list", "GET"): row(200, 200, 200, 403, 200, 403, LOGIN),
    ("annotations:session-review", "POST"): row(302, 404, 403, 403, 302, 403, LOGIN),

    # Annotation API: annotators work on their own sessions of pseudonymous slides; pathologists of the
    # project's slides' departments and admins manage. Outsiders: visible lists empty, objects 404.
    ("api:annotation-field-agreement", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    # One annotator's set is no consensus: 400 with the reason to those who may see the field.
    ("api:annotation-field-consensus", "GET"): row(400, 404, 403, 403, 400, 403, 401),
    ("api:annotation-field-detail", "GET"): row(200, 404, 200, 403, 200, 403, 401),
    ("api:annotation-field-list", "GET"): row(200, 200, 200, 403, 200, 403, 401),
    ("api:annotation-field-list", "POST"): row(201, 400, 400, 403, 201, 403, 401),
    ("api:annotation-project-annotators", "POST"): row(400, 404, 403, 403, 400, 403, 401),
    ("api:annotation-project-detail", "GET"): row(200, 404, 200, 403, 200, 403, 401),
    ("api:annotation-project-export-dataset", "POST"): row(400, 404, 403, 403, 400, 403, 401),
    ("api:annotation-project-list", "GET"): row(200, 200, 200, 403, 200, 403, 401),
    ("api:annotation-project-list", "POST"): row(400, 400, 403, 403, 400, 403, 401),
    ("api:annotation-project-train-model", "POST"): row(400, 404, 403, 403, 400, 403, 401),
    ("api:annotation-project-training-runs", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:annotation-project-cancel-training", "POST"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:annotation-session-accept", "POST"): row(409, 404, 403, 403, 409, 403, 401),
    ("api:annotation-session-detail", "GET"): row(200, 404, 200, 403, 200, 403, 401),
    ("api:annotation-session-export-points", "GET"): row(200, 404, 200, 403, 200, 403, 401),
    ("api:annotation-session-import-points", "POST"): row(400, 404, 400, 403, 400, 403, 401),
    ("api:annotation-session-list", "GET"): row(200, 200, 200, 403, 200, 403, 401),
    ("api:annotation-session-points", "GET"): row(200, 404, 200, 403, 200, 403, 401),
    ("api:annotation-session-points", "PUT"): row(400, 404, 400, 403, 400, 403, 401),
    ("api:annotation-session-return-", "POST"): row(409, 404, 403, 403, 409, 403, 401),
    ("api:annotation-session-submit", "POST"): row(403, 404, 200, 403, 403, 403, 401),

    # API root, schema and Swagger UI: any signed-in user; the token endpoint takes credentials (empty: 400).
    ("api:api-root", "GET"): row(200, 200, 200, 200, 200, 200, 401),

    # Hospital integration API: orders only from service users holding integration.submit_orders (no
    # persona does: 403), the delivery and inbound state for admins.
    ("api:integration-fhir-servicerequest", "POST"): row(403, 403, 403, 403, 403, 403, 401),
    ("api:integration-inbound-list", "GET"): row(403, 403, 403, 403, 200, 403, 401),
    ("api:integration-outbox-list", "GET"): row(403, 403, 403, 403, 200, 403, 401),

    # Clinical record API: pathologists of the department and admins; other departments 404; reports:
    # only pathologists author, sign and amend; the treating clinician reads signed reports.
    ("api:case-detail", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:case-detail", "PATCH"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:case-detail", "PUT"): row(400, 404, 403, 403, 400, 403, 401),
    ("api:case-list", "GET"): row(200, 200, 403, 403, 200, 403, 401),
    ("api:case-list", "POST"): row(400, 400, 403, 403, 400, 403, 401),
    ("api:job-cancel", "POST"): row(409, 404, 403, 403, 409, 403, 401),
    ("api:job-detail", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:job-list", "GET"): row(200, 200, 403, 403, 200, 403, 401),
    ("api:job-list", "POST"): row(400, 400, 403, 403, 400, 403, 401),
    ("api:job-retry", "POST"): row(409, 404, 403, 403, 409, 403, 401),
    ("api:patient-detail", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:patient-detail", "PATCH"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:patient-detail", "PUT"): row(400, 404, 403, 403, 400, 403, 401),
    ("api:patient-list", "GET"): row(200, 200, 403, 403, 200, 403, 401),
    ("api:patient-list", "POST"): row(400, 400, 403, 403, 400, 403, 401),
    ("api:pseudo-slide-detail", "GET"): row(200, 404, 200, 403, 200, 403, 401),
    ("api:pseudo-slide-list", "GET"): row(200, 200, 200, 403, 200, 403, 401),
    ("api:pseudo-slide-thumbnail", "GET"): row(200, 404, 200, 403, 200, 403, 401),
    ("api:report-amend", "POST"): row(201, 404, 403, 403, 403, 403, 401),
    ("api:report-comment", "POST"): row(200, 404, 403, 403, 403, 403, 401),
    ("api:report-detail", "GET"): row(200, 404, 403, 200, 200, 403, 401),
    ("api:report-fhir", "GET"): row(200, 404, 403, 200, 200, 403, 401),
    ("api:report-list", "GET"): row(200, 200, 403, 200, 200, 403, 401),
    ("api:report-list", "POST"): row(400, 400, 403, 403, 403, 403, 401),
    ("api:report-pdf", "GET"): row(200, 404, 403, 200, 200, 403, 401),
    ("api:report-sign", "POST"): row(400, 404, 403, 403, 403, 403, 401),
    ("api:schema", "GET"): row(200, 200, 200, 200, 200, 200, 401),
    ("api:slide-detail", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:slide-detail", "PATCH"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:slide-list", "GET"): row(200, 200, 403, 403, 200, 403, 401),
    ("api:slide-list", "POST"): row(400, 400, 403, 403, 400, 403, 401),
    ("api:slide-mpp", "POST"): row(400, 404, 403, 403, 400, 403, 401),
    ("api:slide-thumbnail", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:swagger-ui", "GET"): row(200, 200, 200, 200, 200, 200, 401),
    ("api:token", "POST"): row(400, 400, 400, 400, 400, 400, 400),

    # Viewer API of an analysis job: who may see the job's slide.
    ("api:viewer-job-corrections", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:viewer-job-corrections", "POST"): row(400, 404, 403, 403, 400, 403, 401),
    ("api:viewer-job-density", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:viewer-job-export", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:viewer-job-hotspots", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:viewer-job-point", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:viewer-job-points", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:viewer-job-region", "DELETE"): row(409, 404, 403, 403, 409, 403, 401),
    ("api:viewer-job-regions", "GET"): row(200, 404, 403, 403, 200, 403, 401),
    ("api:viewer-job-regions", "POST"): row(400, 404, 403, 403, 400, 403, 401),
    ("api:viewer-job-state", "GET"): row(200, 404, 403, 403, 200, 403, 401),

    # Clinical record pages (anonymous: redirected to the login page).
    ("cases:annotator-slides", "GET"): row(200, 200, 200, 403, 200, 403, LOGIN),
    ("cases:case-create", "GET"): row(200, 200, 403, 403, 200, 403, LOGIN),
    ("cases:case-create", "POST"): row(200, 200, 403, 403, 200, 403, LOGIN),
    ("cases:case-detail", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("cases:case-detail", "POST"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("cases:case-list", "GET"): row(200, 200, 403, 403, 200, 403, LOGIN),
    ("cases:case-report", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("cases:case-report", "POST"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("cases:home", "GET"): row(302, 302, 302, 302, 302, 403, LOGIN),
    ("cases:patient-create", "GET"): row(200, 200, 403, 403, 200, 403, LOGIN),
    ("cases:patient-create", "POST"): row(200, 200, 403, 403, 200, 403, LOGIN),
    ("cases:patient-list", "GET"): row(200, 200, 403, 403, 200, 403, LOGIN),
    ("cases:pseudo-slide-thumbnail", "GET"): row(200, 404, 200, 403, 200, 403, LOGIN),
    ("cases:report-detail", "GET"): row(200, 404, 403, 200, 200, 403, LOGIN),
    ("cases:report-list", "GET"): row(200, 200, 403, 200, 200, 403, LOGIN),
    ("cases:slide-detail", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("cases:slide-detail", "POST"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("cases:slide-thumbnail", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),
    # The label can name the patient: pathologists and admins only, never annotators (issue 18 item 9).
    ("cases:slide-associated-image", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),

    # Sign-in and sign-out: Django's own views.
    ("login", "GET"): row(200, 200, 200, 200, 200, 200, 200),
    ("login", "POST"): row(200, 200, 200, 200, 200, 200, 200),
    ("login", "PUT"): row(200, 200, 200, 200, 200, 200, 200),
    ("logout", "POST"): row(LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN),

    # Slide viewer and tiles: identified by pk (clinical roles), pseudonymous by pseudo_id (annotators too).
    ("viewer:pseudo-dzi", "GET"): row(200, 404, 200, 403, 200, 403, LOGIN),
    ("viewer:pseudo-info", "GET"): row(200, 404, 200, 403, 200, 403, LOGIN),
    ("viewer:pseudo-tile", "GET"): row(200, 404, 200, 403, 200, 403, LOGIN),
    ("viewer:slide-dzi", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("viewer:slide-info", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("viewer:slide-tile", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("viewer:slide-viewer", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),

    # Analysis job pages.
    ("workers:job-action", "POST"): row(302, 404, 403, 403, 302, 403, LOGIN),
    ("workers:slide-jobs", "GET"): row(200, 404, 403, 403, 200, 403, LOGIN),
    ("workers:slide-jobs", "POST"): row(302, 404, 403, 403, 302, 403, LOGIN),
}

# Websocket routes (pdl1site/routing.py): ACCEPT, or the close code the consumer refuses with
# (4401 not signed in, 4403 no access: a job or slide of another department answers like a missing one).
ACCEPT = "accept"
WS_MATRIX = {
    #                                     path.   outsider annot. clinic. admin   norole anonymous
    "ws/ping/":                  row(ACCEPT, ACCEPT, ACCEPT, ACCEPT, ACCEPT, ACCEPT, 4401),
    "ws/jobs/<int:job_id>/":     row(ACCEPT, 4403, 4403, 4403, ACCEPT, 4403, 4401),
    "ws/slides/<int:slide_id>/": row(ACCEPT, 4403, 4403, 4403, ACCEPT, 4403, 4401),
}
