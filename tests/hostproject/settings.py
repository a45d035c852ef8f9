"""The host project's settings: the hospital's own, plus what the module asks a host to set.

Written from README.md ("Installing into a host Django project"), not copied from pdl1site.settings:
if the module needs a setting the README does not list, the host test fails. Everything lives in
HOST_VAR_DIR (a temporary directory made by the test).
"""

import os
from pathlib import Path

VAR = Path(os.environ["HOST_VAR_DIR"])

SECRET_KEY = "host-project-test-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
ROOT_URLCONF = "hostproject.urls"
AUTH_USER_MODEL = "hostusers.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "Europe/Berlin"
STATIC_URL = "/static/"
STATIC_ROOT = VAR / "static"
MEDIA_ROOT = VAR / "media"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR / "host.sqlite3",
        "TEST": {"NAME": VAR / "host-test.sqlite3"},
    }
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "hostproject.hostusers",
    # --- the PD-L1 module and what it builds on (README: INSTALLED_APPS) ---
    "pdl1site",  # base.html, the login page, site.css, OpenSeadragon; before drf_spectacular (its Swagger page)
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
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "pdl1site.middleware.AuditActorMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# URL names, so they follow the prefix the module is mounted under.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "cases:home"
LOGOUT_REDIRECT_URL = "login"

AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "cases.auth.lockout_response"
AXES_VERBOSE = False
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cases.auth.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": ["pdl1site.rest.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_METADATA_CLASS": "pdl1site.rest.Metadata",
}
SPECTACULAR_SETTINGS = {"SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR", "REDOC_DIST": "SIDECAR"}

Q_CLUSTER = {"name": "host-pdl1", "orm": "default", "sync": True, "timeout": 3600, "retry": 3700}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
AUDITLOG_INCLUDE_ALL_MODELS = False

FILE_UPLOAD_HANDLERS = ["cases.uploads.LimitedTemporaryFileUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
FILE_UPLOAD_TEMP_DIR = str(MEDIA_ROOT / "tmp")

# --- Settings the module owns (README: the table of module settings) ---
INSTITUTION_NAME = "St Elsewhere Hospital, Department of Pathology"
API_TOKEN_MAX_AGE = 8 * 3600
SLIDE_UPLOAD_MAX_BYTES = 2 * 1024**3
SLIDE_MAX_PIXELS = 40_000_000_000
SLIDE_MAX_DECODE_PIXELS = 50_000_000
SLIDE_VALIDATION_MEMORY_BYTES = 4 * 1024**3
SLIDE_VALIDATION_TIMEOUT_SECONDS = 300
ANNOTATION_IMPORT_MAX_BYTES = 20 * 1024**2
JOB_MAX_TILES = 200_000
BATCH_DEADLINE_SECONDS = 900
BATCH_MAX_ATTEMPTS = 3
VIEWER_TILE_GRANT_SECONDS = 10
VIEWER_SLIDE_CACHE_SIZE = 16
VIEWER_TILE_CACHE_BYTES = 32 * 1024**2
VIEWER_JPEG_QUALITY = 80
FHIR_MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"
FHIR_ACCESSION_SYSTEM = "urn:oid:2.16.840.1.113883.19.6"
PDL1_GPU_INDEX = None
PDL1_WORKER_INDEX = 0
PDL1_GPU_STREAM = False
PDL1_GPU_READERS = 0
PDL1_GPU_BATCH = 32
PDL1_TORCH_COMPILE = False
PDL1_TORCH_COMPILE_MODE = ""
PDL1_COMPILE_CACHE = ""
