from django.urls import path

from annotations import views

app_name = "annotations"
urlpatterns = [
    path("annotate/sessions/", views.session_list, name="session-list"),
    path("annotate/sessions/<int:pk>/", views.session_page, name="session"),
]
