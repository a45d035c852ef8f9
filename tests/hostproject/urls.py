"""The host's URLs: its own home page and admin, the PD-L1 module under /pathology/."""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path

from pdl1site.urls import module_urlpatterns

urlpatterns = [
    path("", lambda request: HttpResponse("Hospital information system"), name="his-home"),
    path("admin/", admin.site.urls),
    path("pathology/", include(module_urlpatterns)),
]
