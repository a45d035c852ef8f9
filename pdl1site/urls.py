from django.apps import apps
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from cases.auth_views import ObtainExpiringAuthToken
from pdl1site.api import router

api_patterns = [
    path("", include(router.urls)),
    path("auth/token/", ObtainExpiringAuthToken.as_view(), name="token"),
    # The hospital integration app is optional in a host project: its API only where it is installed.
    *([path("integration/", include("integration.urls"))] if apps.is_installed("integration") else []),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: no inline script (Content-Security-Policy).
    # GET only: OPTIONS would render the API metadata through the page's HTML template (a 500).
    path("schema/swagger-ui/", SpectacularSwaggerSplitView.as_view(url_name="api:schema", http_method_names=["get", "head"]),
         name="swagger-ui"),
]

# The module's pages, API and login: all of it but the admin, which a host project has already. A
# host mounts it under its own prefix: path("pathology/", include(module_urlpatterns)) (README.md,
# "Installing into a host Django project"); every link and script URL is reverse()d from these names.
module_urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include((api_patterns, "api"))),
    path("", include("workers.urls")),
    path("", include("viewer.urls")),
    path("", include("annotations.urls")),
    path("", include("cases.urls")),
]

urlpatterns = [path("admin/", admin.site.urls), *module_urlpatterns]

# An unreachable database answers 503 with Retry-After instead of a bare 500 (pdl1site/errors.py).
handler500 = "pdl1site.errors.server_error"
