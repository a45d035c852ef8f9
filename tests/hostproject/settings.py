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
    "integration",  # optional: orders in, results out (docs/integration.md)
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
        "pdl1site.rest.FilterBackend",
        "rest_framework.filters.OrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": ["pdl1site.rest.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_METADATA_CLASS": "pdl1site.rest.Metadata",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "pdl1site.rest.ContentNegotiation",
}
SPECTACULAR_SETTINGS = {"SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR", "REDOC_DIST": "SIDECAR"}

Q_CLUSTER = {"name": "host-pdl1", "orm": "default", "sync": True, "timeout": 3600, "retry": 3700}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
AUDITLOG_INCLUDE_ALL_MODELS = False

FILE_UPLOAD_HANDLERS = ["cases.uploads.LimitedTemporaryFileUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
FILE_UPLOAD_TEMP_DIR = str(MEDIA_ROOT / "tmp")

# --- Settings the module owns (README: "Settings the module owns") ---
# None is required: each is prefixed PDL1_ and has a default (pdl1site/conf.py). This host sets one, which
# host_checks.py shows the module honouring (an upload past it is refused).
PDL1_SLIDE_UPLOAD_MAX_BYTES = 50_000
