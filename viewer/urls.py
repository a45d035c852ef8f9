from django.urls import path

from viewer import views

app_name = "viewer"
urlpatterns = [
    path("slides/<int:pk>/viewer/", views.slide_viewer, name="slide-viewer"),
    path("viewer/slides/<int:pk>.dzi", views.slide_dzi, name="slide-dzi"),
    path("viewer/slides/<int:pk>_files/<int:level>/<int:col>_<int:row>.jpeg", views.slide_tile, name="slide-tile"),
    path("viewer/slides/<int:pk>/info.json", views.slide_info, name="slide-info"),
    path("viewer/pseudo/<uuid:pseudo_id>.dzi", views.pseudo_dzi, name="pseudo-dzi"),
    path("viewer/pseudo/<uuid:pseudo_id>_files/<int:level>/<int:col>_<int:row>.jpeg", views.pseudo_tile,
         name="pseudo-tile"),
    path("viewer/pseudo/<uuid:pseudo_id>/info.json", views.pseudo_info, name="pseudo-info"),
]
