"""Settings for the PD-L1 platform, driven by environment variables.

Every variable is documented in README.md ("Configuration"). With none set, the platform runs
embedded: SQLite, the django-q2 ORM broker and an in-process channel layer, no Redis needed.
Setting DATABASE_URL and REDIS_URL switches to the production services.
"""

import logging
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from pdl1site.conf import DEFAULTS as defaults  # the module's own settings (PDL1_…): one set of defaults
from pdl1site.env import env_bool, env_bytes, env_choice, env_int, env_list, env_optional_int, env_str, file_secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PDL1_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

_DEV_SECRET = "dev-only-insecure-key-never-use-in-production"
_PRODUCTION = bool(env_str("DATABASE_URL"))  # a server database: a deployment, whatever DEBUG says
# The embedded demo's own database (DATABASE_URL unset: SQLite under PDL1_VAR_DIR). Only there does
# `manage.py load_demo` create its users with the passwords README.md publishes, unless --not-production.
EMBEDDED_DEFAULT_DATABASE = not _PRODUCTION
# The public development key only on a developer's embedded site: with DATABASE_URL set a forgotten
# SECRET_KEY stops start-up even with DEBUG on (sessions and signed tokens would be forgeable).
SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY and not SECRET_KEY.strip():
    # Blanks only: a key anyone can guess, which would have been used as given (it is not empty).
    raise ImproperlyConfigured("SECRET_KEY is set but holds only whitespace: set a long random key")
SECRET_KEY = SECRET_KEY or (_DEV_SECRET if DEBUG and not _PRODUCTION else None)
if not SECRET_KEY and not _PRODUCTION:
    # Embedded mode: the key `make run` wrote (made here if missing), so manage.py commands in
    # another shell work without exporting it. Production (DATABASE_URL set) must set SECRET_KEY.
    SECRET_KEY = file_secret(VAR_DIR / "secret_key", create=True)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set in production (DATABASE_URL is set), DEBUG or not")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
if _PRODUCTION and not DEBUG and "*" in ALLOWED_HOSTS:
    # Any Host header would be accepted: links in e-mails and redirects could name an attacker's host.
    raise ImproperlyConfigured("ALLOWED_HOSTS='*' is refused in production (DATABASE_URL is set): name the host "
                               "names the site is reached by")
if not ALLOWED_HOSTS and (_PRODUCTION or not DEBUG):
    # Set but naming no host (ALLOWED_HOSTS="" or ","): Django would answer every request 400. Only with
    # DEBUG on an embedded site does an empty list mean something (Django's localhost names).
    raise ImproperlyConfigured("ALLOWED_HOSTS is set but names no host, so every request would be refused: "
                               "name the host names the site is reached by (unset: localhost,127.0.0.1,[::1])")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Behind the hospital's TLS-terminating proxy: trust its X-Forwarded-Proto and send cookies over
# HTTPS only. Off by default so the embedded demo works on plain http://127.0.0.1.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
# The proxy in front appends each client's address to X-Forwarded-For: the audit trail then records
# that last entry (pdl1site.middleware.client_address), else the connection's address. A setting of its
# own, off by default: a TLS proxy that sets X-Forwarded-Proto but passes X-Forwarded-For on untouched
# would let every client write the address the audit trail records.
PDL1_TRUST_FORWARDED_FOR = env_bool("TRUST_FORWARDED_FOR", defaults["PDL1_TRUST_FORWARDED_FOR"])
# HSTS: browsers that reached the site over HTTPS use nothing else for this long. Sent only on HTTPS
# requests (behind the proxy: X-Forwarded-Proto https), so on by default there and off elsewhere.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if BEHIND_TLS_PROXY else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
# Redirect plain-HTTP requests to HTTPS in Django (where the proxy does not already).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)  # one working day
# How long a session's tile access to a slide, decided by the tile view, is replayed by the tile
# fast path (viewer/fastpath.py) without asking Django again; 0 turns the fast path off.
PDL1_VIEWER_TILE_GRANT_SECONDS = env_int("VIEWER_TILE_GRANT_SECONDS", defaults["PDL1_VIEWER_TILE_GRANT_SECONDS"],
                                         minimum=0)
# The tile server (viewer/tiles.py): open slides kept per process, bytes of rendered tiles kept per
# process (0: none), and the JPEG quality of rendered tiles (part of each tile's ETag).
PDL1_VIEWER_SLIDE_CACHE_SIZE = env_int("VIEWER_SLIDE_CACHE_SIZE", defaults["PDL1_VIEWER_SLIDE_CACHE_SIZE"], minimum=1)
PDL1_VIEWER_TILE_CACHE_BYTES = env_int("VIEWER_TILE_CACHE_BYTES", defaults["PDL1_VIEWER_TILE_CACHE_BYTES"], minimum=0)
# At most 95: Pillow's own advice; above it files grow a lot for no visible gain (100 turns parts of
# the JPEG compression off), and Pillow silently clamps anything over 100.
PDL1_VIEWER_JPEG_QUALITY = env_int("VIEWER_JPEG_QUALITY", defaults["PDL1_VIEWER_JPEG_QUALITY"], minimum=1,
                                   maximum=95)
# The web server's first garbage-collector threshold (pdl1site/asgi.py tune_gc); 0 = Python's defaults.
SERVER_GC_THRESHOLD = env_int("SERVER_GC_THRESHOLD", 50_000, minimum=0)

INSTALLED_APPS = [
    "daphne",  # first, so runserver is the ASGI server too
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "channels",
    "auditlog",
    "csp",
    "axes",
    "cases",
    "annotations",
    "analysis",
    "workers",
    "viewer",
    "integration",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Content-Security-Policy on every dynamic response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # Cache-Control: private, no-store unless a view set its own (pdl1site/middleware.py).
    "pdl1site.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a django-axes lockout into its answer (cases.auth.lockout_response). Sync-only audit
    # middleware below keeps it on axes' sync path.
    "axes.middleware.AxesMiddleware",
    # After authentication, so every audit entry names the user who acted; the actor is read when
    # an entry is written, so API token users (authenticated by DRF in the view) are named too.
    "pdl1site.middleware.AuditActorMiddleware",
]

ROOT_URLCONF = "pdl1site.urls"
ASGI_APPLICATION = "pdl1site.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cases.context_processors.roles",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0))}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server and workers share the file: take the write lock when a transaction begins
    # (a read lock upgraded later fails at once with "database is locked"), wait up to 30 s for
    # it, and let readers go on during writes (WAL).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
EMBEDDED_DATABASE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: task broker and channel layer -----------------------------------------------------
REDIS_URL = env_str("REDIS_URL") or None
# redis-py would read a URL of another scheme only when the first task is queued or the first
# websocket connects, long after start-up said nothing.
if REDIS_URL is not None and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} is not a Redis URL (redis://, rediss:// or unix://), "
                               "e.g. redis://host:6379/0; unset it for the embedded broker")
EMBEDDED_BROKER = REDIS_URL is None

Q_CLUSTER = {
    "name": "pdl1",
    "workers": env_int("Q_WORKERS", 1, minimum=1),
    "timeout": env_int("Q_TIMEOUT", 3600, minimum=10),
    "retry": env_int("Q_RETRY", 3700, minimum=20),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 3, minimum=1),
    "queue_limit": 50,
    "bulk": 1,
    "catch_up": False,
    "label": "Task queue",
}
if Q_CLUSTER["retry"] <= Q_CLUSTER["timeout"]:
    # django-q2 gives a task still running after `retry` seconds to a second worker: with retry not
    # above timeout every long analysis would run twice at once.
    raise ImproperlyConfigured(f"Q_RETRY ({Q_CLUSTER['retry']}) must be greater than Q_TIMEOUT "
                               f"({Q_CLUSTER['timeout']}): raise Q_RETRY (default 3700) with Q_TIMEOUT")
# Training runs have a queue of their own (workers.choices.TRAINING_QUEUE): one worker started with
# Q_CLUSTER_NAME=training takes them, so clinical analysis never waits behind a training run.
TRAINING_TIMEOUT_SECONDS = env_int("TRAINING_TIMEOUT_SECONDS", 86400, minimum=60)
# The training watchdog (workers.training.watch_training_runs, every minute): a running run that has not
# reported for this long lost its worker (killed, or the machine restarted) and is resumed from its last
# checkpoint, at most TRAINING_MAX_ATTEMPTS starts in all, else failed with the reason. Longer than
# the slowest step, the dataset loading and the final held-out evaluation.
PDL1_TRAINING_STALE_SECONDS = env_int("TRAINING_STALE_SECONDS", defaults["PDL1_TRAINING_STALE_SECONDS"], minimum=30)
PDL1_TRAINING_MAX_ATTEMPTS = env_int("TRAINING_MAX_ATTEMPTS", defaults["PDL1_TRAINING_MAX_ATTEMPTS"], minimum=1)
Q_CLUSTER["ALT_CLUSTERS"] = {
    "training": {"workers": 1, "timeout": TRAINING_TIMEOUT_SECONDS, "retry": TRAINING_TIMEOUT_SECONDS + 600,
                 "max_attempts": 1},
}
# A detect batch not finished this long after it was queued or started goes back in the queue
# (its worker was killed, or the Redis broker lost its task). Longer than the slowest batch.
PDL1_BATCH_DEADLINE_SECONDS = env_int("BATCH_DEADLINE_SECONDS", defaults["PDL1_BATCH_DEADLINE_SECONDS"], minimum=2)
# A batch leased this many times without finishing (its worker died each time) fails its job.
PDL1_BATCH_MAX_ATTEMPTS = env_int("BATCH_MAX_ATTEMPTS", defaults["PDL1_BATCH_MAX_ATTEMPTS"], minimum=1)

if EMBEDDED_BROKER:
    Q_CLUSTER["orm"] = "default"
else:
    Q_CLUSTER["redis"] = REDIS_URL

if EMBEDDED_BROKER:
    # In-process only: workers in other processes cannot publish here; the viewer falls back to
    # polling job state from the database in this mode.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }

# --- Files ----------------------------------------------------------------------------------
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"  # never served directly: slide files go through permission-checked views
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # OpenSeadragon from the npm registry (package.json, `npm ci` in `make setup`), served locally
    # as /static/vendor/openseadragon/ with its button images: hospital networks reach no CDN.
    ("vendor/openseadragon", BASE_DIR / "node_modules" / "openseadragon" / "build" / "openseadragon"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Uploads always stream to a temporary file next to the media root (same file system, so the
# accepted file is moved, not copied), never whole into memory.
FILE_UPLOAD_HANDLERS = ["cases.uploads.LimitedTemporaryFileUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
FILE_UPLOAD_TEMP_DIR = str(MEDIA_ROOT / "tmp")
PDL1_SLIDE_UPLOAD_MAX_BYTES = env_bytes("SLIDE_UPLOAD_MAX_BYTES", defaults["PDL1_SLIDE_UPLOAD_MAX_BYTES"])
# Declared image sizes are checked before any pixel is decoded (slideio.slidefile.check_declared_size).
PDL1_SLIDE_MAX_PIXELS = env_int("SLIDE_MAX_PIXELS", defaults["PDL1_SLIDE_MAX_PIXELS"], minimum=1)
PDL1_SLIDE_MAX_DECODE_PIXELS = env_int("SLIDE_MAX_DECODE_PIXELS", defaults["PDL1_SLIDE_MAX_DECODE_PIXELS"], minimum=1)
# Pixels of an upload are decoded in a child process under these limits (cases.isolation).
PDL1_SLIDE_VALIDATION_MEMORY_BYTES = env_bytes("SLIDE_VALIDATION_MEMORY_BYTES",
                                               defaults["PDL1_SLIDE_VALIDATION_MEMORY_BYTES"])
PDL1_SLIDE_VALIDATION_TIMEOUT_SECONDS = env_int("SLIDE_VALIDATION_TIMEOUT_SECONDS",
                                                defaults["PDL1_SLIDE_VALIDATION_TIMEOUT_SECONDS"], minimum=1)
# Annotation point files (GeoJSON/CSV) are read whole: their own, small cap.
PDL1_ANNOTATION_IMPORT_MAX_BYTES = env_bytes("ANNOTATION_IMPORT_MAX_BYTES",
                                             defaults["PDL1_ANNOTATION_IMPORT_MAX_BYTES"])
# An analysis job's tile grid (estimated from the slide and parameters before it is queued).
PDL1_JOB_MAX_TILES = env_int("JOB_MAX_TILES", defaults["PDL1_JOB_MAX_TILES"], minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024**2

# --- Auth, API --------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "cases:home"  # each role its own home (cases.views.home)
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a check: its password_changed hook deletes the user's API tokens (cases/auth.py).
    {"NAME": "cases.auth.RevokeTokensOnPasswordChange"},
]
# Seconds an API token works after it was issued; then it is refused and a new one must be obtained.
PDL1_API_TOKEN_MAX_AGE = env_int("API_TOKEN_MAX_AGE", defaults["PDL1_API_TOKEN_MAX_AGE"], minimum=60)

# Brute-force protection (django-axes) on every password check: the login page, the API token
# endpoint and the report sign-off. After LOGIN_FAILURE_LIMIT wrong passwords for one user name,
# that user name is refused (429), right password or not, for LOGIN_LOCKOUT_MINUTES (a wrong try
# meanwhile restarts the wait). Every failure is recorded (admin: Axes → access failures);
# `manage.py axes_reset_username NAME` lifts a lockout early.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username"]  # per account: an attacker rotating addresses is still stopped
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]  # masked in the failure records
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "cases.auth.lockout_response"
AXES_VERBOSE = False  # no start-up banner on every manage.py command; failures and lockouts still log
# axes.W006 asks for the client address as a lockout key too. Not here: behind the hospital's TLS
# proxy every client has the proxy's address, so an address lockout would lock out the whole
# hospital after LOGIN_FAILURE_LIMIT typos; the per-account count cannot be dodged by rotating
# addresses or browsers (axes sums an account's failures over all of them).
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an anonymous API call gets 401 with a WWW-Authenticate header.
        "cases.auth.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "pdl1site.rest.FilterBackend",  # related objects by id, not a choice among all rows
        "rest_framework.filters.OrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    # JSON only: DRF's browsable pages build their filter and form drop-downs from every row of the
    # related table (get_queryset is not consulted), so they listed every patient's name and MRN
    # to any signed-in pathologist.  Swagger UI (/api/schema/swagger-ui/) is the browsable view.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON nested too deeply is a 400, and OPTIONS never needs a serializer (pdl1site.rest).
    "DEFAULT_PARSER_CLASSES": ["pdl1site.rest.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_METADATA_CLASS": "pdl1site.rest.Metadata",
    # ?format= is the answer's format only where the view renders that one; otherwise it is left to the
    # view's filters (the slide lists' `format`, e.g. aperio), not a 404.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "pdl1site.rest.ContentNegotiation",
    # The apps' service errors (an `http_status` on the exception class) answer 4xx here, once.
    "EXCEPTION_HANDLER": "pdl1site.rest.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PD-L1 IHC analysis API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and Swagger UI describe every endpoint and field: signed-in users only.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI assets ship in drf-spectacular-sidecar: hospital networks reach no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Content-Security-Policy (django-csp) -------------------------------------------------------
# Scripts and style sheets from this site's static files only: no inline script anywhere (tests check
# the templates), so an injected <script> never runs. Inline style *attributes* are allowed (label
# colours, a progress bar; they cannot run code). The one inline <style> element, in base.html, is
# OpenSeadragon's own small rule, pre-placed with the request's nonce so the library does not inject
# it. OpenSeadragon decodes some tiles in a blob: worker and draws blob: images.
from csp.constants import NONCE, NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": [SELF, "data:", "blob:"],
        "connect-src": [SELF],  # fetch and same-origin websockets
        "font-src": [SELF],
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

# --- Audit ------------------------------------------------------------------------------------
AUDITLOG_INCLUDE_ALL_MODELS = False  # models register themselves in their apps
AUDITLOG_DISABLE_REMOTE_ADDR = False

# --- Locale -----------------------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

PDL1_INSTITUTION_NAME = env_str("INSTITUTION_NAME", defaults["PDL1_INSTITUTION_NAME"])
# FHIR identifier systems of the patient's MRN and the case's accession number in report bundles.
PDL1_FHIR_MRN_SYSTEM = env_str("FHIR_MRN_SYSTEM", defaults["PDL1_FHIR_MRN_SYSTEM"])
PDL1_FHIR_ACCESSION_SYSTEM = env_str("FHIR_ACCESSION_SYSTEM", defaults["PDL1_FHIR_ACCESSION_SYSTEM"])

# --- GPU workers (workers/pipeline.py, workers/gpu_runtime.py) ---------------------------------------
# PDL1_GPU_INDEX pins a worker process to one visible GPU (else PDL1_WORKER_INDEX modulo the GPUs);
# either, or PDL1_GPU_STREAM, sends network detectors through the GPU tile stream.
PDL1_GPU_INDEX = env_optional_int("PDL1_GPU_INDEX", minimum=0)  # unset: None, not pinned
PDL1_WORKER_INDEX = env_int("PDL1_WORKER_INDEX", defaults["PDL1_WORKER_INDEX"], minimum=0)
PDL1_GPU_STREAM = env_bool("PDL1_GPU_STREAM", defaults["PDL1_GPU_STREAM"])
# Tile-decoding processes per worker, tiles per forward pass; compile mode empty: gpu_runtime.DEFAULT_COMPILE_MODE,
# compile cache empty: MEDIA_ROOT/torch-compile-cache.
PDL1_GPU_READERS = env_int("PDL1_GPU_READERS", defaults["PDL1_GPU_READERS"], minimum=0)
PDL1_GPU_BATCH = env_int("PDL1_GPU_BATCH", defaults["PDL1_GPU_BATCH"], minimum=1)
PDL1_TORCH_COMPILE = env_bool("PDL1_TORCH_COMPILE", defaults["PDL1_TORCH_COMPILE"])
PDL1_TORCH_COMPILE_MODE = env_str("PDL1_TORCH_COMPILE_MODE", defaults["PDL1_TORCH_COMPILE_MODE"])
PDL1_COMPILE_CACHE = env_str("PDL1_COMPILE_CACHE", defaults["PDL1_COMPILE_CACHE"])

# --- Hospital integration (integration app: HL7 v2 over MLLP, FHIR R4 over REST) ------------------
# The module's own settings, prefixed PDL1_INTEGRATION_ (README, "Configuration"; docs/integration.md).
# Orders are filed into this department (its code); unset: every order is refused with a NACK.
PDL1_INTEGRATION_ORDER_DEPARTMENT = env_str("PDL1_INTEGRATION_ORDER_DEPARTMENT",
                                            defaults["PDL1_INTEGRATION_ORDER_DEPARTMENT"])
# PID-3's assigning authority (namespace id) of the MRN; empty: the repetition whose type is MR.
PDL1_INTEGRATION_MRN_AUTHORITY = env_str("PDL1_INTEGRATION_MRN_AUTHORITY", defaults["PDL1_INTEGRATION_MRN_AUTHORITY"])
PDL1_INTEGRATION_MLLP_HOST = env_str("PDL1_INTEGRATION_MLLP_HOST", defaults["PDL1_INTEGRATION_MLLP_HOST"])
PDL1_INTEGRATION_MLLP_PORT = env_int("PDL1_INTEGRATION_MLLP_PORT", defaults["PDL1_INTEGRATION_MLLP_PORT"], minimum=1,
                                     maximum=65535)
PDL1_INTEGRATION_MAX_MESSAGE_BYTES = env_bytes("PDL1_INTEGRATION_MAX_MESSAGE_BYTES",
                                               defaults["PDL1_INTEGRATION_MAX_MESSAGE_BYTES"])
# MSH-3/MSH-4 of what the module sends, MSH-5/MSH-6 of its results.
PDL1_INTEGRATION_APPLICATION = env_str("PDL1_INTEGRATION_APPLICATION", defaults["PDL1_INTEGRATION_APPLICATION"])
PDL1_INTEGRATION_FACILITY = env_str("PDL1_INTEGRATION_FACILITY", defaults["PDL1_INTEGRATION_FACILITY"])
PDL1_INTEGRATION_RESULTS_APPLICATION = env_str("PDL1_INTEGRATION_RESULTS_APPLICATION",
                                               defaults["PDL1_INTEGRATION_RESULTS_APPLICATION"])
PDL1_INTEGRATION_RESULTS_FACILITY = env_str("PDL1_INTEGRATION_RESULTS_FACILITY",
                                            defaults["PDL1_INTEGRATION_RESULTS_FACILITY"])
# Results out: ORU^R01 to this MLLP peer (host:port) and/or the FHIR bundle to this base URL; empty: none.
PDL1_INTEGRATION_RESULTS_MLLP_PEER = env_str("PDL1_INTEGRATION_RESULTS_MLLP_PEER",
                                             defaults["PDL1_INTEGRATION_RESULTS_MLLP_PEER"])
PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL = env_str("PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL",
                                                 defaults["PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL"])
PDL1_INTEGRATION_RESULTS_FHIR_AUTHORIZATION = env_str("PDL1_INTEGRATION_RESULTS_FHIR_AUTHORIZATION",
                                                      defaults["PDL1_INTEGRATION_RESULTS_FHIR_AUTHORIZATION"])
# Each delivery attempt's connect + answer limit; retries wait RETRY_BASE * 2^(attempts-1), at most RETRY_MAX.
PDL1_INTEGRATION_TIMEOUT_SECONDS = env_int("PDL1_INTEGRATION_TIMEOUT_SECONDS",
                                           defaults["PDL1_INTEGRATION_TIMEOUT_SECONDS"], minimum=1)
PDL1_INTEGRATION_RETRY_BASE_SECONDS = env_int("PDL1_INTEGRATION_RETRY_BASE_SECONDS",
                                              defaults["PDL1_INTEGRATION_RETRY_BASE_SECONDS"], minimum=1)
PDL1_INTEGRATION_RETRY_MAX_SECONDS = env_int("PDL1_INTEGRATION_RETRY_MAX_SECONDS",
                                             defaults["PDL1_INTEGRATION_RETRY_MAX_SECONDS"], minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # A name logging knows, checked here: dictConfig's "Unable to configure root logger" names no variable.
    "root": {"handlers": ["console"], "level": env_choice("LOG_LEVEL", "INFO", list(logging.getLevelNamesMapping()))},
    # django-axes logs every successful login at INFO; its failures and lockouts are warnings.
    "loggers": {"axes": {"level": "WARNING"}},
}
